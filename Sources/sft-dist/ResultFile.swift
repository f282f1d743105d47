import Distributed
import Foundation
import Models

/// The results file of score, eval and generate (`--out FILE`).
extension Runtime {
    /// `--out FILE` of score, eval and generate (collective): a path, not one of the inputs.
    static func checkOutputFile(_ out: String?, inputs: [(String, String)], model: String, adapter: String?) {
        guard let out else { return }
        Fatal.agree(ReplaceableOutput.emptyPathProblem([("--out", out)]))
        Fatal.agree(ReplaceableOutput.fileOutputsProblem(outputs: [("--out", out)], inputs: inputs,
                                                         inputDirectories: [("--model", model)] + (adapter.map { [("--adapter", $0)] } ?? [])),
                    code: Fatal.Code.output)
    }
}

/// Temp file + rename: an interrupted write never leaves a half-written output behind.
func writeAtomically(_ text: String, to path: String) -> String? {
    do {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return nil
    } catch {
        return "\(path): cannot write (\(MessageText.reason(error, for: path)))"
    }
}
