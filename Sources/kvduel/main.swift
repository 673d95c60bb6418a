import Foundation
import Llama
let t0 = Date()
let model = try LlamaModel(path: CommandLine.arguments[1])
print("load", Date().timeIntervalSince(t0), model.fingerprint, model.weights.residentBytes)
let ids = CommandLine.arguments[2].split(separator: ",").map { Int32($0)! }
let ctx = LlamaContext(model: model, threads: 2)
let cache = KVState(config: model.config)
let t1 = Date()
let logits = ctx.forward(tokens: ids, positions: (0..<Int32(ids.count)).map { $0 }, cache: cache)
print("prefill", Date().timeIntervalSince(t1))
FileManager.default.createFile(atPath: CommandLine.arguments[3], contents: logits.withUnsafeBytes { Data($0) })
// decode check: prefill all-but-last then decode last
let cache2 = KVState(config: model.config)
ctx.forward(tokens: Array(ids.dropLast()), positions: (0..<Int32(ids.count - 1)).map { $0 }, cache: cache2, logits: .none)
let l2 = ctx.forward(tokens: [ids.last!], positions: [Int32(ids.count - 1)], cache: cache2)
FileManager.default.createFile(atPath: CommandLine.arguments[3] + ".dec", contents: l2.withUnsafeBytes { Data($0) })
