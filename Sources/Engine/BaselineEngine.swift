import Llama
import Tokenizer

/// A normal KV-cached engine: every request prefills its whole prompt (in ubatches, with a KV
/// cache within the request, as any serving engine without prefix caching) and drops the KV after.
public final class BaselineEngine: InferenceEngine {
    public let label = "baseline"
    public private(set) var cumulative = RequestStats()
    public var memory: MemoryStats { MemoryStats() }   // nothing is kept between requests
    let core: EngineCore
    /// Tokens per prefill batch (progress is reported between batches).
    public var ubatch = 512
    private let buffer: KVState

    public init(model: LlamaModel, tokenizer: Tokenizer, threads: Int) {
        core = EngineCore(model: model, tokenizer: tokenizer, threads: threads)
        buffer = KVState(config: model.config)
    }

    public func reset() { cumulative = RequestStats() }
    public func cacheState(of tokens: [Int32]) -> SegmentCacheState { .notCached }

    public func generate(_ request: EngineRequest, cancel: CancelFlag?,
                         onEvent: (EngineEvent) -> Void) throws -> GenerationResult {
        let engineStart = EngineCore.now()
        let start = request.submittedAt ?? engineStart
        let prompt = try core.validate(request)
        onEvent(.started(promptTokens: prompt.count))
        // One KV buffer for the engine's life, emptied at every request (as a serving engine
        // allocates its KV cache once): no KV is kept between requests, and no request pays for
        // allocating and zeroing a fresh buffer on its critical path.
        let cache = buffer
        cache.clear()
        cache.reserve(prompt.count + request.maxTokens + 1)
        var logits: [Float] = []
        var done = 0
        let t0 = EngineCore.now()
        while done < prompt.count {
            let n = min(ubatch, prompt.count - done)
            let last = done + n == prompt.count
            logits = core.ctx.forward(tokens: Array(prompt[done..<(done + n)]),
                                      positions: (done..<(done + n)).map { Int32($0) },
                                      cache: cache, logits: last ? .last : .none)
            done += n
            onEvent(.prefillProgress(done: done, total: prompt.count))
        }
        var stats = RequestStats()
        stats.promptTokens = prompt.count
        stats.computedFresh = prompt.count
        stats.prefillSeconds = EngineCore.seconds(t0, EngineCore.now())
        stats.breakdown.tokenize = EngineCore.seconds(start, engineStart)
        stats.breakdown.computeNew = stats.prefillSeconds
        let d = core.decode(from: logits, cache: cache, request: request, start: start, cancel: cancel, onEvent: onEvent)
        stats.ttftSeconds = d.ttft
        stats.breakdown.close(ttft: d.ttft)
        stats.decodeSeconds = d.decodeSeconds
        stats.generatedTokens = d.tokens.count + (d.endedWithEOG ? 1 : 0)
        stats.kvBytesLive = cache.bytes
        let result = core.result(d, stats: stats, request: request, cache: cache, promptCount: prompt.count)
        cumulative.accumulate(stats)
        onEvent(.finished(stats))
        return result
    }
}
