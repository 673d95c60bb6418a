import Dispatch
@_exported import Llama
import Tokenizer

/// What both engines share: the model, one context with its thread budget, the tokenizer
/// (for end-of-generation and streaming text), and the decode loop. Same kernels, same sampling.
final class EngineCore {
    let model: LlamaModel
    let ctx: LlamaContext
    let tokenizer: Tokenizer

    init(model: LlamaModel, tokenizer: Tokenizer, threads: Int) {
        self.model = model
        self.tokenizer = tokenizer
        ctx = LlamaContext(model: model, threads: threads)
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
    static func seconds(_ a: UInt64, _ b: UInt64) -> Double { Double(b &- a) / 1e9 }

    func validate(_ request: EngineRequest) throws -> [Int32] {
        let prompt = request.promptTokens
        guard !prompt.isEmpty else { throw EngineError.emptyPrompt }
        let vocab = Int32(model.config.vocabSize)
        if let bad = prompt.first(where: { $0 < 0 || $0 >= vocab }) { throw EngineError.invalidToken(bad) }
        guard prompt.count + request.maxTokens <= model.config.contextLength else {
            throw EngineError.promptTooLong(tokens: prompt.count, maxTokens: request.maxTokens, context: model.config.contextLength)
        }
        return prompt
    }

    struct Decoded {
        var tokens: [Int32] = []
        var text = ""
        var ttft = 0.0
        var decodeSeconds = 0.0
        var firstLogits: [Float] = []
        var endedWithEOG = false
        var stopToken: Int32?
    }

    /// Samples from `logits` (the prompt's last position), then decodes one token at a time on
    /// `cache` until end of generation, `maxTokens`, or cancellation. Emits firstToken and token events.
    func decode(from logits: [Float], cache: KVState, request: EngineRequest, start: UInt64,
                cancel: CancelFlag?, onEvent: (EngineEvent) -> Void) -> Decoded {
        var out = Decoded()
        var sampler = Sampler(temperature: request.sampling.temperature, topK: request.sampling.topK,
                              topP: request.sampling.topP, seed: request.sampling.seed)
        var stream = tokenizer.makeStreamDecoder()
        var logits = logits
        out.firstLogits = logits
        let promptCount = cache.count
        var t1: UInt64 = 0
        while out.tokens.count < request.maxTokens {
            let next = sampler.sample(logits)
            if out.tokens.isEmpty {
                let now = Self.now()
                out.ttft = Self.seconds(start, now)
                t1 = now
                onEvent(.firstToken(ttftSeconds: out.ttft))
            }
            if tokenizer.isEndOfGeneration(next) { out.endedWithEOG = true; out.stopToken = next; break }
            out.tokens.append(next)
            let piece = stream.append(next)
            out.text += piece
            onEvent(.token(id: next, text: piece))
            if out.tokens.count == request.maxTokens || cancel?.isCancelled == true { break }
            logits = ctx.forward(tokens: [next], positions: [Int32(promptCount + out.tokens.count - 1)], cache: cache)
        }
        let rest = stream.flush()
        if !rest.isEmpty {
            out.text += rest
            onEvent(.token(id: -1, text: rest))
        }
        if t1 != 0 { out.decodeSeconds = Self.seconds(t1, Self.now()) }
        return out
    }

    /// The result, with teacher-forced logits when asked: `collectLogits` scores the engine's own
    /// answer (and its stop token), `teacherForce` a given continuation. Both go through the batched
    /// path from a copy of the prompt cache, so two engines' logits differ only by their prompt KV.
    /// `cache` holds the prompt in its first `promptCount` slots (decode only appended after them);
    /// scoring works on top of them and leaves the cache truncated to the prompt.
    func result(_ d: Decoded, stats: RequestStats, request: EngineRequest, cache: KVState, promptCount: Int) -> GenerationResult {
        var r = GenerationResult(tokens: d.tokens, text: d.text, stats: stats, firstTokenLogits: d.firstLogits)
        r.stopToken = d.stopToken
        if request.collectLogits {
            cache.truncate(to: promptCount)
            r.stepLogits = score(d.tokens + (d.stopToken.map { [$0] } ?? []), after: d.firstLogits, cache: cache)
        }
        if let tf = request.teacherForce {
            cache.truncate(to: promptCount)
            r.teacherLogits = score(tf, after: d.firstLogits, cache: cache)
        }
        return r
    }

    /// Teacher-forced logits of `continuation` after the prompt held in `cache` (appended to it).
    func score(_ continuation: [Int32], after firstLogits: [Float], cache: KVState) -> [[Float]] {
        guard !continuation.isEmpty else { return [] }
        var out = [firstLogits]
        if continuation.count > 1 {
            let n = cache.count
            let toks = Array(continuation.dropLast())
            let all = ctx.forward(tokens: toks, positions: (0..<toks.count).map { Int32(n + $0) }, cache: cache,
                                  logits: .all)
            let V = model.config.vocabSize
            for i in 0..<toks.count { out.append(Array(all[(i * V)..<((i + 1) * V)])) }
        }
        return out
    }
}

/// Adds one request's statistics into running totals.
extension RequestStats {
    public mutating func accumulate(_ r: RequestStats) {
        promptTokens += r.promptTokens
        reusedExact += r.reusedExact
        reusedBlended += r.reusedBlended
        recomputed += r.recomputed
        computedFresh += r.computedFresh
        generatedTokens += r.generatedTokens
        ttftSeconds += r.ttftSeconds
        lookupSeconds += r.lookupSeconds
        loadSeconds += r.loadSeconds
        prefillSeconds += r.prefillSeconds
        decodeSeconds += r.decodeSeconds
        checkedTokens += r.checkedTokens
        postAnswerSeconds += r.postAnswerSeconds
        breakdown.accumulate(r.breakdown)
        cake = r.cake
        kvBytesLive = r.kvBytesLive
        for t in r.tiers {
            var a = self[tier: t.name] ?? TierFigures(name: t.name)
            a.hitTokens += t.hitTokens
            a.bytesRead += t.bytesRead
            a.bytesWritten += t.bytesWritten
            a.roundTrips += t.roundTrips
            a.readSeconds += t.readSeconds
            a.storeBytes = t.storeBytes
            a.rejectedEntries = t.rejectedEntries
            a.writeErrors = t.writeErrors
            a.droppedWrites = t.droppedWrites
            a.state = t.state
            self[tier: t.name] = a
        }
        evictions = r.evictions
        recomputeRatio = r.recomputeRatio
    }
}
