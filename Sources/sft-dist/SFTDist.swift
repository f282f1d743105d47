import ArgumentParser
import Distributed
import Foundation
import Training

@main
struct SFTDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sft-dist",
        abstract: "Data-parallel supervised fine-tuning of language models over MPI.",
        discussion: """
        Run under mpirun for data parallelism (mpirun -n 4 sft-dist train ...), or as a plain \
        process for one rank. With no arguments, trains the embedded default: a small GPT on \
        built-in arithmetic and string tasks, evaluated before and after.
        """,
        subcommands: [Train.self, Eval.self, Score.self, Select.self, Generate.self, Tokenize.self, MakeData.self, Export.self, Merge.self, MergeLoRA.self, Bench.self],
        defaultSubcommand: Train.self)

    /// Argument errors print on rank 0 only: under mpirun every rank parses the same flags.
    /// A bad flag is bad input: one line and exit code 1, as the README's table says (not
    /// the argument parser's usage text and 64); help and `ExitCode` keep their own.
    /// `sft-dist help bogus` printed the overview with exit 0 (the argument parser's help
    /// command ignores names it does not know); a script checking `help NAME` saw success.
    static func unknownHelpTopic(_ args: [String]) -> String? {
        guard args.first == "help" else { return nil }
        var commands: [ParsableCommand.Type] = configuration.subcommands
        for name in args.dropFirst() where !name.hasPrefix("-") {
            guard let next = commands.first(where: { $0._commandName == name }) else { return name }
            commands = next.configuration.subcommands
        }
        return nil
    }

    /// `train`'s "Unknown option '--learning-rate'" answered with our name for transformers',
    /// TRL's or peft's setting (`ForeignNames`); `generate`'s and `eval`'s with their own table
    /// (train's would be wrong there: generate's --temperature is its own, not rollouts').
    /// The parser reports a missing required flag (or a `validate()` error) before an unknown
    /// one, so "Missing expected argument '--data'" beside `--num-return-sequences` becomes that
    /// flag's line: the other library's name is the likelier slip. The line to print instead of
    /// `line`, or nil.
    static func foreignFlagLine(_ line: String) -> String? {
        let args = CommandLine.arguments.dropFirst(), prefix = "Unknown option '--"
        guard let command = args.first else { return nil }
        func hint(_ name: String) -> String? {
            runsTrain(firstArgument: command) ? ForeignNames.flagHint(name) : ForeignNames.generationFlagHint(name, command: command)
        }
        if line.hasPrefix(prefix) {
            // In place of the parser's spelling guess: "Did you mean '--beta1'?" for DPO's beta.
            let name = String(line.dropFirst(prefix.count).prefix { $0 != "'" })
            return hint(name).map { "Unknown option '--\(name)'" + $0 }
        }
        // Any other line of the parser's (a missing flag, or a check in `validate()`, which it
        // runs before it reports an unknown option): `generate --do-sample` without --prompt
        // was answered "give exactly one of --prompt or --prompts".
        for arg in args where arg.hasPrefix("--") {
            let name = String(arg.dropFirst(2).prefix { $0 != "=" })
            if let h = hint(name) { return "Unknown option '--\(name)'" + h }
        }
        return nil
    }

    /// "Unexpected argument 'false'" after a switch (`--completion-only-loss false`, as TRL's
    /// command line takes it): switches take no value here, and their `--no-` form is the false
    /// one. nil for any other line.
    static func switchValueLine(_ line: String) -> String? {
        let head = "Unexpected argument '"
        guard line.hasPrefix(head) else { return nil }
        let value = String(line.dropFirst(head.count).prefix { $0 != "'" })
        let truth = ["true": true, "false": false, "yes": true, "no": false, "1": true, "0": false]
        guard let yes = truth[value.lowercased()] else { return nil }
        let args = Array(CommandLine.arguments.dropFirst())
        guard let at = args.firstIndex(of: value), at > 0, args[at - 1].hasPrefix("--"), !args[at - 1].contains("=") else { return nil }
        let flag = String(args[at - 1].dropFirst(2))
        let opposite = flag.hasPrefix("no-") ? String(flag.dropFirst(3)) : "no-" + flag
        return "--\(flag) takes no value (got \(RecipeError.quote(value))): " + (yes ? "give --\(flag) alone" : "leave it out, or give --\(opposite) where --help lists it")
    }

    /// The parser's "The value 'x' is invalid for '--count <count>': must be an integer in
    /// 1…10000000" in the words a value out of its limits gets (`--count must be an integer in
    /// 1…10000000 (got x)`), or nil.
    static func flagValueLine(_ line: String) -> String? {
        let head = "The value '", middle = "' is invalid for '--", reason = ": must be "
        guard line.hasPrefix(head), let m = line.range(of: middle), let r = line.range(of: reason, options: .backwards) else { return nil }
        let value = line[line.index(line.startIndex, offsetBy: head.count)..<m.lowerBound]
        let flag = line[m.upperBound...].prefix { $0 != " " && $0 != "'" }
        return "--\(flag) must be \(line[r.upperBound...]) (got \(value.isEmpty ? "an empty value" : RecipeError.quote(String(value))))"
    }

    /// `sft-dist trian …` parses as train (the default subcommand) with a stray argument, and
    /// the parser reports that word, several, or another flag of train's first (`generat
    /// --prompt hi`: "Unknown option '--prompt'. Did you mean '--prompts'?"). A first word one
    /// or two edits from a subcommand is the error: the line names it instead.
    static func subcommandTypoLine() -> String? {
        let names = configuration.subcommands.map { $0._commandName }
        guard let first = CommandLine.arguments.dropFirst().first, !first.hasPrefix("-"), !names.contains(first),
              let near = names.min(by: { editDistance(first, $0) < editDistance(first, $1) }),
              editDistance(first, near) <= 2 else { return nil }
        return "no subcommand '\(first)'; did you mean '\(near)'?"
    }

    /// Levenshtein distance (insertions, deletions, substitutions).
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var row = Array(0...b.count)   // distances from a[..<i] to every prefix of b
        for i in 1...a.count {
            var previous = row[0]
            row[0] = i
            for j in 1...b.count {
                let substitution = previous + (a[i - 1] == b[j - 1] ? 0 : 1)
                previous = row[j]
                row[j] = min(substitution, row[j] + 1, row[j - 1] + 1)
            }
        }
        return row[b.count]
    }

    /// Whether a command line starting with this word runs train: its name, an option (train is
    /// the default subcommand), or nothing at all.
    static func runsTrain(firstArgument first: String?) -> Bool {
        guard let first else { return true }
        return first == Train._commandName || first.hasPrefix("-")
    }

    static func main() {
        Runtime.restartWithVectorBLASKernel()
        // Ctrl-\ (SIGQUIT) quits, as it does any program: the Swift runtime's backtracer caught
        // it, printed a "Program crashed" report of 60 lines, and the run went on to exit 0.
        signal(SIGQUIT, SIG_DFL)
        // train's SIGUSR1 — checkpoint and stop (StopSignal) — from the start: a warning that
        // came during MPI's start-up or the loading of model and data ended the rank. train is
        // also what runs without a subcommand (`sft-dist --config r.yaml`).
        if runsTrain(firstArgument: CommandLine.arguments.dropFirst().first) { StopSignal.install() } else {
            StopSignal.installNote(sayIt: Runtime.launcherRank == 0)
        }
        if let unknown = unknownHelpTopic(Array(CommandLine.arguments.dropFirst())) {
            Runtime.agreeBeforeExit("stopped at its arguments (no subcommand '\(unknown)')")
            if Runtime.launcherRank == 0 {
                printError("sft-dist: error: no subcommand '\(unknown)': sft-dist help lists them")
            }
            Runtime.exit(Fatal.Code.input)
        }
        do {
            var command = try parseAsRoot()
            Runtime.command = "sft-dist " + type(of: command)._commandName
            try command.run()
            // Commands that end without Runtime.finish (tokenize, make-data) are checked here.
            if let problem = Runtime.standardOutputProblem() { Runtime.exitForOutput(problem) }
            Runtime.finishMPI()
            Runtime.exit(0)
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is ExitCode {
                Runtime.agreeBeforeExit(code == .success ? "prints help" : "stops (exit code \(code.rawValue))")
                // As the argument parser's exit(withError:) prints: help on standard output.
                let text = fullMessage(for: error)
                if Runtime.launcherRank == 0 && !text.isEmpty {
                    if code == .success { print(text) } else { printError(text) }
                }
                // Help that could not be written (`sft-dist help train > /dev/full`) is an output error, exit 6, as every command's.
                if code == .success, let problem = Runtime.standardOutputProblem() { Runtime.exitForOutput(problem) }
                Runtime.exit(code.rawValue)
            }
            // Our own errors are one line already (a line break in a path inside is escaped);
            // the argument parser's may go on with usage text, which is left out.
            let fromParser = String(reflecting: type(of: error)).hasPrefix("ArgumentParser.")
            var line = !fromParser ? Fatal.singleLine(error is RecipeError ? "\(error)" : message(for: error))
                : message(for: error).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            if fromParser, let hinted = subcommandTypoLine() ?? foreignFlagLine(line) ?? flagValueLine(line) ?? switchValueLine(line) { line = hinted }
            Runtime.agreeBeforeExit("stopped at its arguments (\(RecipeError.quote(line, limit: 120)))")
            if Runtime.launcherRank == 0 {
                printError("sft-dist: error: " + RecipeError.quote(line, limit: 280))
            }
            // An error that names its class (OutputError: 6, a model too large: 5) exits with it.
            Runtime.exit((error as? FatalExitCode)?.fatalExitCode ?? Fatal.Code.input)
        }
    }
}
