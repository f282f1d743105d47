#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Float buffers mapped straight from the kernel (anonymous `mmap`): they read as zero without
/// being written, and a page costs memory only once something writes into it. The parameter
/// store's gradient buffer lives here, so it keeps the parameters' layout (a parameter's
/// gradient at the parameter's offset: one allreduce, clip and optimizer loop per range) while
/// frozen ranges (LoRA's base, `--freeze`), which nothing writes, are never resident.
public enum ZeroedPages {
    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// `count` floats (at least one), page-aligned, reading as zero. Free with `free(_:count:)`.
    /// Failure is a message through `CheckedAllocation.failureHandler`, as for every large buffer.
    public static func floats(_ count: Int, for purpose: @autoclosure () -> String) -> UnsafeMutablePointer<Float> {
        let (bytes, overflow) = max(count, 1).multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        let p = overflow ? MAP_FAILED : mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard p != MAP_FAILED, let p else {
            CheckedAllocation.failureHandler("out of memory: cannot allocate \(CheckedAllocation.describe(bytes: overflow ? Int.max : bytes)) for \(purpose())")
        }
        return p.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    public static func free(_ pointer: UnsafeMutablePointer<Float>, count: Int) {
        munmap(UnsafeMutableRawPointer(pointer), max(count, 1) * MemoryLayout<Float>.stride)
    }

    /// Zeroes `range` of the buffer at `base`: the pages wholly inside it go back to the system
    /// (private anonymous pages read as zero after `MADV_DONTNEED`), the partial pages at its
    /// ends are written with zeros.
    public static func release(_ base: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        guard let pages = wholePages(base, range) else {
            (base + range.lowerBound).update(repeating: 0, count: range.count)
            return
        }
        let head = (pages.lowerBound - UInt(bitPattern: base + range.lowerBound)) / UInt(MemoryLayout<Float>.stride)
        let tail = (UInt(bitPattern: base + range.upperBound) - pages.upperBound) / UInt(MemoryLayout<Float>.stride)
        (base + range.lowerBound).update(repeating: 0, count: Int(head))
        (base + range.upperBound - Int(tail)).update(repeating: 0, count: Int(tail))
        let start = UnsafeMutableRawPointer(bitPattern: pages.lowerBound)!
        if madvise(start, pages.count, MADV_DONTNEED) != 0 {
            start.initializeMemory(as: UInt8.self, repeating: 0, count: pages.count)
        }
    }

    /// How many pages wholly inside `range` of the buffer at `base` are resident (`mincore`),
    /// or nil when the system cannot say: what tests check frozen gradient ranges against.
    public static func residentPages(_ base: UnsafeMutablePointer<Float>, _ range: Range<Int>) -> Int? {
        guard let pages = wholePages(base, range) else { return 0 }
        #if canImport(Glibc)
        var vec = [UInt8](repeating: 0, count: pages.count / pageSize)
        #else
        var vec = [CChar](repeating: 0, count: pages.count / pageSize)
        #endif
        guard mincore(UnsafeMutableRawPointer(bitPattern: pages.lowerBound), pages.count, &vec) == 0 else { return nil }
        return vec.reduce(0) { $0 + Int($1 & 1) }
    }

    /// The addresses of the pages wholly inside `range` of the buffer at `base`, nil if none.
    private static func wholePages(_ base: UnsafeMutablePointer<Float>, _ range: Range<Int>) -> Range<UInt>? {
        let page = UInt(pageSize)
        let lo = UInt(bitPattern: base + range.lowerBound), hi = UInt(bitPattern: base + range.upperBound)
        let pageLo = (lo + page - 1) / page * page, pageHi = hi / page * page
        return pageLo < pageHi ? pageLo..<pageHi : nil
    }
}
