/// Number formats shared by the meters and the top bar. Deterministic (no locale).
public enum Fmt {
    public static func seconds(_ s: Double) -> String {
        if s < 10 { return fixed(s, 3) + " s" }
        if s < 100 { return fixed(s, 1) + " s" }
        return fixed(s, 0) + " s"
    }

    public static func bytes(_ b: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(b)
        var i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        if i == 0 { return "\(b) B" }
        return (v < 10 ? fixed(v, 1) : fixed(v, 0)) + " " + units[i]
    }

    /// `96.1%`; whole numbers without decimals (`15%`, `100%`).
    public static func percent(_ f: Double) -> String {
        let p = f * 100
        let oneDecimal = fixed(p, 1)
        return (oneDecimal.hasSuffix(".0") ? String(oneDecimal.dropLast(2)) : oneDecimal) + "%"
    }

    public static func rate(_ r: Double) -> String { fixed(r, 1) + " tok/s" }

    /// Fixed-point formatting without Foundation (round half away from zero).
    public static func fixed(_ v: Double, _ digits: Int) -> String {
        guard v.isFinite else { return "–" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let neg = v < 0
        let n = Int64((abs(v) * scale).rounded())
        let scaleI = Int64(scale)
        let whole = n / scaleI
        var s = neg && n != 0 ? "-\(whole)" : "\(whole)"
        if digits > 0 {
            var frac = String(n % scaleI)
            while frac.count < digits { frac = "0" + frac }
            s += "." + frac
        }
        return s
    }

    /// Unicode block sparkline of `values`, scaled to `max`.
    public static func sparkline(_ values: [Double], max m: Double) -> String {
        let bars: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
        guard m > 0 else { return String(repeating: "▁", count: values.count) }
        return String(values.map { v -> Character in
            let i = Int((v / m * 7).rounded())
            return bars[min(7, Swift.max(0, i))]
        })
    }

    /// A progress bar `███░░░` of `width` cells.
    public static func bar(_ fraction: Double, width: Int) -> (filled: String, empty: String) {
        let f = Swift.min(1, Swift.max(0, fraction.isFinite ? fraction : 0))
        let n = Int((f * Double(width)).rounded(.down))
        return (String(repeating: "█", count: n), String(repeating: "░", count: Swift.max(0, width - n)))
    }
}
