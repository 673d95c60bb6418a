// swift-tools-version:6.0
import PackageDescription
#if canImport(Glibc)
import Glibc
#endif

/// Release builds enable AVX2/FMA when the build machine has them: without `-target-cpu`,
/// Swift SIMD `addingProduct` lowers to scalar `fmaf` calls (see README, "Architecture").
func hostCPUFlags() -> [String] {
    #if os(Linux) && arch(x86_64)
    // The manifest has no Foundation: read /proc/cpuinfo with stdio.
    guard let f = fopen("/proc/cpuinfo", "r") else { return [] }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 8192)
    while fgets(&line, Int32(line.count), f) != nil {
        let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard s.hasPrefix("flags") else { continue }
        let set = Set(s.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init))
        return set.isSuperset(of: ["avx2", "fma", "f16c"]) ? ["-target-cpu", "haswell"] : []
    }
    return []
    #else
    return []
    #endif
}

/// The C kernels get the matching -m flags; without them they fall back to portable C (or NEON on
/// aarch64). No implicit fused multiply-adds: the kernels spell out each one, so every compiler
/// and CPU computes the same operations (Tests/ckernels).
func hostCFlags() -> [String] {
    hostCPUFlags().isEmpty ? ["-O3", "-ffp-contract=off"] : ["-O3", "-ffp-contract=off", "-mavx2", "-mfma", "-mf16c"]
}

let hot: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo"] + hostCPUFlags(), .when(configuration: .release)),
]

let package = Package(
    name: "kvduel",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "kvduel", targets: ["kvduel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // System-library shims. Only these know about C libraries.
        .systemLibrary(name: "CNCurses", path: "Sources/CNCurses",
                       pkgConfig: "ncursesw",
                       providers: [.apt(["libncursesw5-dev"]), .brew(["ncurses"])]),
        .target(name: "CTerm", dependencies: ["CNCurses"], path: "Sources/CTerm"),
        .systemLibrary(name: "CHiredis", path: "Sources/CHiredis",
                       pkgConfig: "hiredis",
                       providers: [.apt(["libhiredis-dev"]), .brew(["hiredis"])]),

        .target(name: "GGUF", swiftSettings: hot),
        .target(name: "Tokenizer", dependencies: ["GGUF"], swiftSettings: hot),
        .target(name: "CKernels", path: "Sources/CKernels", cSettings: [.unsafeFlags(hostCFlags())]),
        .target(name: "Llama", dependencies: ["GGUF", "CKernels", .product(name: "Crypto", package: "swift-crypto")],
                swiftSettings: hot),
        .target(name: "KVCache", swiftSettings: hot),
        .target(name: "Engine", dependencies: ["Llama", "Tokenizer", "KVCache"], swiftSettings: hot),
        // The shared remote tier (Redis protocol, hiredis); only the executable and its tests link it.
        .target(name: "RedisTier", dependencies: ["KVCache", "CHiredis",
                                                  .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "DuelCore", dependencies: ["Engine", "Yams"], swiftSettings: hot),
        .target(name: "TerminalUI", dependencies: ["DuelCore", "CNCurses", "CTerm"], swiftSettings: hot),
        .target(name: "Session", dependencies: ["DuelCore", "Engine", "TerminalUI"]),
        .executableTarget(name: "kvduel", dependencies: [
            "GGUF", "Tokenizer", "Llama", "KVCache", "Engine", "DuelCore", "TerminalUI", "Session", "RedisTier",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: hot),

        .target(name: "TestSupport", dependencies: ["GGUF", "Llama", "KVCache", "Tokenizer"], path: "Tests/TestSupport"),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "TestSupport"]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizer", "GGUF", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "LlamaTests", dependencies: ["Llama", "CKernels", "GGUF", "Tokenizer", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "KVCacheTests", dependencies: ["KVCache", "TestSupport"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Llama", "KVCache", "TestSupport",
                                                   "Tokenizer", "GGUF", "DuelCore"]),
        .testTarget(name: "RedisTierTests", dependencies: ["RedisTier", "KVCache", "Engine", "Llama",
                                                      "TestSupport", "Tokenizer", "GGUF"]),
        .testTarget(name: "DuelCoreTests", dependencies: ["DuelCore", "Engine"]),
        .target(name: "UITestSupport", dependencies: ["TerminalUI", "DuelCore"], path: "Tests/UITestSupport"),
        .testTarget(name: "TerminalUITests", dependencies: ["TerminalUI", "DuelCore", "Engine", "UITestSupport"],
                    resources: [.copy("Snapshots")]),
        // Pure logic of the bench commands (statistics, JSON, llama-server's responses).
        .testTarget(name: "BenchTests", dependencies: ["kvduel", "Engine"]),
        .testTarget(name: "SessionTests", dependencies: ["Session", "TerminalUI", "DuelCore", "Engine", "UITestSupport"],
                    resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)
