import Engine
import Foundation
import XCTest
import kvduel

/// Pure logic of `bench --scenario`: the statistics over repeats, the breakdown's JSON, and what
/// it reads from llama-server (HTTP, chunked bodies, the streamed completion events, the port).
final class BenchFiguresTests: XCTestCase {
    func testSpreadMedianAndRange() {
        XCTAssertEqual(Spread([3, 1, 2]).median, 2)
        XCTAssertEqual(Spread([4, 1, 3, 2]).median, 2.5)
        XCTAssertEqual(Spread([5]).median, 5)
        XCTAssertEqual(Spread([]).median, 0)
        let s = Spread([0.050, 0.040, 0.045])
        XCTAssertEqual(s.min, 0.040)
        XCTAssertEqual(s.max, 0.050)
        XCTAssertEqual(s.samples, [0.050, 0.040, 0.045], "samples keep their repeat order")
        XCTAssertEqual(s.text(scale: 1000), "45 (40–50)")
        XCTAssertEqual(Spread([1.234]).text(decimals: 2, suffix: "x"), "1.23x", "one sample: no range")
        XCTAssertEqual(s.scaled(1000).median, 45, accuracy: 1e-9)
        let j = Spread([1, 3, 2]).json
        XCTAssertEqual(j["median"] as? Double, 2)
        XCTAssertEqual(j["min"] as? Double, 1)
        XCTAssertEqual(j["max"] as? Double, 3)
        XCTAssertEqual(j["samples"] as? [Double], [1, 3, 2])
    }

    func testBreakdownJSONAddsUpToTTFT() throws {
        var b = TTFTBreakdown()
        b.tokenize = 0.001
        b.lookup = 0.002
        b.addLoad(0.003, tier: "ram")
        b.addLoad(0.004, tier: "disk")
        b.computeNew = 0.030
        b.close(ttft: 0.050)
        let j = breakdownJSON(b)
        let load = try XCTUnwrap(j["load_ms"] as? [String: Double])
        XCTAssertEqual(load["ram"]!, 3, accuracy: 1e-9)
        XCTAssertEqual(load["disk"]!, 4, accuracy: 1e-9)
        XCTAssertEqual(j["other_ms"] as! Double, 10, accuracy: 1e-9)
        XCTAssertEqual(j["sum_ms"] as! Double, 50, accuracy: 1e-9)
        for key in ["tokenize_ms", "lookup_ms", "rerotate_ms", "blend_check_ms", "recompute_ms", "compute_new_ms", "other_ms"] {
            XCTAssertNotNil(j[key] as? Double, key)
        }
        XCTAssertNoThrow(try JSONSerialization.data(withJSONObject: j))
    }

    func testCompletionRequestSendsTokenIDs() throws {
        let body = LlamaCompletion.requestBody(prompt: [1, 42, 7], maxTokens: 16, cachePrompt: true)
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: body) as? [String: Any])
        XCTAssertEqual(o["prompt"] as? [Int], [1, 42, 7])
        XCTAssertEqual(o["n_predict"] as? Int, 16)
        XCTAssertEqual(o["temperature"] as? Int, 0)
        XCTAssertEqual(o["cache_prompt"] as? Bool, true)
        XCTAssertEqual(o["stream"] as? Bool, true)
        XCTAssertNil(o["ignore_eos"], "a chat turn stops where the model stops")
        let speed = LlamaCompletion.requestBody(prompt: [1], maxTokens: 128, cachePrompt: true, ignoreEOS: true)
        let s = try XCTUnwrap(JSONSerialization.jsonObject(with: speed) as? [String: Any])
        XCTAssertEqual(s["ignore_eos"] as? Bool, true)
        XCTAssertEqual(s["n_predict"] as? Int, 128)
    }

    /// A streamed answer as llama-server (commit 7841fc7) sends it, chunked.
    func testParsesChunkedStreamedCompletion() throws {
        let events = [
            #"data: {"index":0,"content":"\n","tokens":[198],"stop":false,"id_slot":-1,"tokens_predicted":1,"tokens_evaluated":6}"#,
            #"data: {"index":0,"content":"I","tokens":[57],"stop":false,"id_slot":-1,"tokens_predicted":2,"tokens_evaluated":6}"#,
            #"data: {"index":0,"content":"","tokens":[],"id_slot":0,"stop":true,"tokens_predicted":2,"tokens_evaluated":6,"stop_type":"limit","tokens_cached":7,"timings":{"prompt_n":4,"prompt_ms":12.5,"prompt_per_token_ms":3.1,"prompt_per_second":320.0,"predicted_n":2,"predicted_ms":8.0,"predicted_per_token_ms":4.0,"predicted_per_second":250.0}}"#,
        ]
        var body = ""
        for e in events {
            let chunk = e + "\n\n"
            body += String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n"
        }
        body += "0\r\n\r\n"
        let raw = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + body
        let r = try HTTPClient.parseResponse(Data(raw.utf8))
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.headers["content-type"], "text/event-stream")
        let c = try LlamaCompletion.parse(stream: r.body)
        XCTAssertEqual(c.tokens, [198, 57])
        XCTAssertEqual(c.content, "\nI")
        XCTAssertEqual(c.tokensEvaluated, 6)
        XCTAssertEqual(c.tokensCached, 7)
        XCTAssertEqual(c.promptN, 4)
        XCTAssertEqual(c.promptMs, 12.5)
        XCTAssertEqual(c.predictedN, 2)
        XCTAssertEqual(c.reused, 2, "prompt tokens taken from the server's cache")
        XCTAssertEqual(c.stopType, "limit")
    }

    func testStreamWithoutFinalEventOrWithErrorFails() {
        XCTAssertThrowsError(try LlamaCompletion.parse(stream: Data(#"data: {"content":"a","tokens":[1],"stop":false}"#.utf8)))
        XCTAssertThrowsError(try LlamaCompletion.parse(stream: Data(#"data: {"error":{"code":400,"message":"bad"}}"#.utf8)))
    }

    func testPlainAndMalformedResponses() throws {
        let r = try HTTPClient.parseResponse(Data("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}extra".utf8))
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(r.body, Data("{}".utf8))
        XCTAssertThrowsError(try HTTPClient.parseResponse(Data("garbage".utf8)))
        XCTAssertThrowsError(try HTTPClient.dechunk(Data("zz\r\nabc\r\n".utf8)))
        XCTAssertThrowsError(try HTTPClient.dechunk(Data("10\r\nshort\r\n".utf8)))
        XCTAssertEqual(try HTTPClient.dechunk(Data("3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".utf8)), Data("abcde".utf8))
    }

    func testServerPortFromLogAndArguments() {
        let log = "main: binding port with default address family\nmain: HTTP server is listening, hostname: 127.0.0.1, port: 41079, http threads: 1\nmain: loading model\n"
        XCTAssertEqual(LlamaServer.listeningPort(inLog: log), 41079)
        XCTAssertNil(LlamaServer.listeningPort(inLog: "main: loading model\n"))
        let a = LlamaServer.arguments(model: "/m.gguf", threads: 2, context: 8192)
        XCTAssertEqual(a[a.firstIndex(of: "-t")! + 1], "2")
        XCTAssertEqual(a[a.firstIndex(of: "-np")! + 1], "1")
        XCTAssertEqual(a[a.firstIndex(of: "--host")! + 1], "127.0.0.1")
        XCTAssertEqual(a[a.firstIndex(of: "--port")! + 1], "0")
    }
}
