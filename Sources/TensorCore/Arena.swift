#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Memory for one forward + backward pass, reused pass after pass so the step loop does not
/// allocate: activations come from a bump allocator, activation gradients from a pool of
/// buffers recycled as the backward pass retires them.
///
/// The first pass of a (batch, sequence) shape grows the arena; `reset()` then folds what it
/// used into one block of the high-water size, so every later pass of that shape (or a
/// smaller one) is served without a single malloc. Gradient buffers go back to the pool as
/// soon as the op that produced a tensor has run its backward (nothing reads that gradient
/// again), so only a few layers' worth of activation gradients are ever live.
///
/// Tensors from the arena are valid until the next `reset()`; a `Tape` built with an arena
/// uses it for every op output, and `Tape(recording:)` without one allocates per tensor as
/// before (tests, evaluation, other model code).
public final class Arena {
    private var block: UnsafeMutableRawPointer?   // mmap
    private var capacity = 0           // bytes in `block`
    private var used = 0
    private var overflow: [UnsafeMutableRawPointer] = []
    private var overflowBytes = 0
    private var highWater = 0
    /// Incremented by every reset; tensors remember theirs so a stale one never returns a
    /// buffer to the pool.
    public private(set) var generation = 0

    // Gradient pool: free buffers by float count, and every buffer ever made.
    private var pool: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var all: [(UnsafeMutablePointer<Float>, Int)] = []
    public private(set) var gradientBytes = 0

    public init() {}

    deinit {
        block.map(release)
        overflow.forEach(release)
        all.forEach { free(UnsafeMutableRawPointer($0.0)) }
    }

    /// `count` floats, 64-byte aligned, uninitialised.
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        let bytes = (max(count, 1) * 4 + 63) & ~63
        if used + bytes <= capacity, let block {
            let p = block + used
            used += bytes
            highWater = max(highWater, used + overflowBytes)
            return p.bindMemory(to: Float.self, capacity: count)
        }
        let p = raw(bytes, "activations")
        overflow.append(p)
        overflowBytes += bytes
        highWater = max(highWater, used + overflowBytes)
        return p.bindMemory(to: Float.self, capacity: count)
    }

    /// A zeroed gradient buffer of `count` floats from the pool (`zeroed: false`: as the
    /// pool holds it, for a kernel that writes every element — `Tensor.gradForWriting`).
    public func gradient(_ count: Int, zeroed: Bool = true) -> UnsafeMutablePointer<Float> {
        let n = max(count, 1)
        let p: UnsafeMutablePointer<Float>
        if let q = pool[n]?.popLast() {
            p = q
        } else {
            var raw: UnsafeMutableRawPointer? = nil
            if posix_memalign(&raw, 64, n * 4) != 0 || raw == nil { outOfMemory(n * 4, "an activation gradient") }
            p = raw!.bindMemory(to: Float.self, capacity: n)
            all.append((p, n))
            gradientBytes += n * 4
        }
        if zeroed { p.update(repeating: 0, count: n) }
        return p
    }

    /// Returns a gradient buffer to the pool.
    public func recycle(_ p: UnsafeMutablePointer<Float>, count: Int) {
        pool[max(count, 1), default: []].append(p)
    }

    /// Starts a new pass: every activation and gradient buffer is free again. If the last
    /// pass outgrew the block, the block is replaced by one of the high-water size, its pages
    /// mapped at once (`MAP_POPULATE`) instead of faulted in one by one as the pass writes.
    public func reset() {
        generation += 1
        if !overflow.isEmpty {
            overflow.forEach(release)
            overflow.removeAll(keepingCapacity: true)
            overflowBytes = 0
            block.map(release)
            capacity = highWater
            block = raw(capacity, "the activation arena", populate: true)
        }
        used = 0
        for key in pool.keys { pool[key]!.removeAll(keepingCapacity: true) }
        for (p, n) in all { pool[n, default: []].append(p) }
    }

    /// Ends a pass (no tensor of this arena may be in use any more): if it outgrew the block,
    /// the block is rebuilt now rather than at the next `reset()`, so the pass that grew the
    /// arena (a run's first step, a benchmark's warm-up) pays for mapping and clearing the
    /// pages and the next pass runs without a page fault.
    public func settle() {
        if !overflow.isEmpty { reset() }
    }

    /// Activation blocks are mapped directly: unmapping returns them to the system at once,
    /// so the first pass's blocks never stay resident beside the consolidated one (freed
    /// malloc chunks of this size would, under glibc's growing mmap threshold).
    private func raw(_ bytes: Int, _ what: String, populate: Bool = false) -> UnsafeMutableRawPointer {
        let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (populate ? Arena.populate : 0), -1, 0)
        if p == MAP_FAILED || p == nil { outOfMemory(bytes, what) }
        sizes[p!] = bytes
        return p!
    }
    private func release(_ p: UnsafeMutableRawPointer) {
        munmap(p, sizes.removeValue(forKey: p) ?? 0)
    }
    private var sizes: [UnsafeMutableRawPointer: Int] = [:]
    #if os(Linux)
    private static let populate = MAP_POPULATE
    #else
    private static let populate: Int32 = 0
    #endif

    /// One line and a non-zero exit instead of a trap (a trapped rank leaves the others
    /// waiting in a collective; exiting ends the job under mpirun).
    private func outOfMemory(_ bytes: Int, _ what: String) -> Never {
        // Through the one failure path, so under mpirun the whole job ends (MPI_Abort).
        CheckedAllocation.failureHandler("out of memory: cannot allocate \(CheckedAllocation.describe(bytes: bytes)) for \(what)")
    }

    /// Bytes held: the activation block (plus overflow) and the gradient pool.
    public var bytes: Int { capacity + overflowBytes + gradientBytes }
}
