import Distributed
import Models

/// A model too large for the available memory exits as out of memory (5), like a failed
/// allocation; every other model problem is bad input (1).
extension ModelError: FatalExitCode {
    public var fatalExitCode: Int32 { isOutOfMemory ? Fatal.Code.outOfMemory : Fatal.Code.input }
}
