import Distributed
import Models

/// Exit codes that errors name themselves (README's table), read by `Fatal.collective` and by
/// the CLI's `main`. A model too large for the available memory exits as out of memory (5),
/// like a failed allocation; every other model problem is bad input (1).
extension ModelError: FatalExitCode {
    public var fatalExitCode: Int32 { isOutOfMemory ? Fatal.Code.outOfMemory : Fatal.Code.input }
}

/// A LoRA target the model lacks is bad input: 1.
extension UnknownLoRATarget: FatalExitCode {
    public var fatalExitCode: Int32 { Fatal.Code.input }
}

/// Output that cannot be written: 6.
extension OutputError: FatalExitCode {
    public var fatalExitCode: Int32 { Fatal.Code.output }
}

/// An output flag given as an empty path is a malformed flag: 1.
extension EmptyPathError: FatalExitCode {
    public var fatalExitCode: Int32 { Fatal.Code.input }
}
