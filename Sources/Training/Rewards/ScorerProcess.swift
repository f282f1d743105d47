import Foundation
import Models

/// Runs one external scorer batch: `/bin/sh -c COMMAND` in its own process group, its input
/// written and its outputs read through non-blocking pipes under one deadline. Whatever the
/// program does — floods stdout, closes its outputs and sleeps, leaves children that hold
/// the pipes — the batch ends by the deadline, what is read stays within `maxOutputBytes`,
/// and the whole process group is killed before the call returns, so no scorer process
/// outlives its batch.
struct ScorerProcess {
    enum Outcome {
        /// The scorer exited (`status` as waitpid reports it) and its stdout is complete.
        case exited(status: Int32, stdout: [UInt8], stderrTail: String)
        case timedOut
        /// More than `maxOutputBytes` on stdout, or a line longer than `maxLineBytes` (the
        /// 0-based index of that line).
        case tooMuchOutput(total: Bool, line: Int)
    }

    var command: String
    var timeout: Double
    var maxLineBytes: Int
    var maxOutputBytes: Int

    func run(input: [UInt8]) throws -> Outcome {
        var toChild: [Int32] = [-1, -1], fromOut: [Int32] = [-1, -1], fromErr: [Int32] = [-1, -1]
        guard pipe(&toChild) == 0, pipe(&fromOut) == 0, pipe(&fromErr) == 0 else {
            for fd in toChild + fromOut + fromErr where fd >= 0 { close(fd) }
            throw ScorerError("scorer command \(MessageText.quoted(command, max: 60)) could not start: no pipes (\(String(cString: strerror(errno))))")
        }
        // Close-on-exec everywhere: the scorer gets only the ends dup2'ed onto 0, 1, 2.
        for fd in toChild + fromOut + fromErr { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let pid: pid_t
        do { pid = try spawn(stdin: toChild[0], stdout: fromOut[1], stderr: fromErr[1]) } catch {
            for fd in toChild + fromOut + fromErr { close(fd) }
            throw error
        }
        ScorerGroups.add(pid)
        close(toChild[0]); close(fromOut[1]); close(fromErr[1])
        var writeFD = toChild[1], outFD = fromOut[0], errFD = fromErr[0]
        for fd in [writeFD, outFD, errFD] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        func closeAll() { for fd in [writeFD, outFD, errFD] where fd >= 0 { close(fd) } }
        defer { closeAll() }

        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, timeout) * 1e9)
        var sent = 0, out: [UInt8] = [], errTail: [UInt8] = [], lineStart = 0, lineIndex = 0
        var status: Int32? = nil, exitedAt: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        if input.isEmpty { close(writeFD); writeFD = -1 }

        func finish(_ outcome: Outcome) -> Outcome {
            // The group first, while the unreaped leader still holds the group id (once the
            // leader is reaped, the group was killed already, below).
            if status == nil {
                kill(-pid, SIGKILL)
                var s: Int32 = 0
                while waitpid(pid, &s, 0) < 0 && errno == EINTR {}
                ScorerGroups.remove(pid)
            }
            return outcome
        }

        while true {
            if status == nil {
                // Wait without reaping: the zombie leader keeps the group id from being reused
                // until the group is killed.
                var info = siginfo_t()
                if waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info._sifields._sigchld.si_pid == pid {
                    // The scorer is done; children it left behind may hold the pipes open, and
                    // would keep running: end them, then read what is already in the pipes.
                    kill(-pid, SIGKILL)
                    var s: Int32 = 0
                    while waitpid(pid, &s, 0) < 0 && errno == EINTR {}
                    ScorerGroups.remove(pid)
                    status = s
                    exitedAt = DispatchTime.now().uptimeNanoseconds
                }
            }
            let now = DispatchTime.now().uptimeNanoseconds
            // Done when the scorer has exited and its pipes are drained (or, if something
            // outside its group still holds them, a second after its exit).
            if status != nil && ((outFD < 0 && errFD < 0) || now > exitedAt + 1_000_000_000) { break }
            if now >= deadline { return finish(.timedOut) }
            var fds: [pollfd] = []
            if writeFD >= 0 { fds.append(pollfd(fd: writeFD, events: Int16(POLLOUT), revents: 0)) }
            if outFD >= 0 { fds.append(pollfd(fd: outFD, events: Int16(POLLIN), revents: 0)) }
            if errFD >= 0 { fds.append(pollfd(fd: errFD, events: Int16(POLLIN), revents: 0)) }
            // Wake at least every 20 ms to notice the scorer's exit when its pipes stay open.
            let wait = Int32(min(20, max(1, (deadline - now) / 1_000_000)))
            if fds.isEmpty { usleep(UInt32(wait) * 1000); continue }
            if poll(&fds, nfds_t(fds.count), wait) < 0 && errno != EINTR {
                return finish(.timedOut)
            }
            if writeFD >= 0 {
                let n = input[sent...].withUnsafeBytes { write(writeFD, $0.baseAddress, min($0.count, 1 << 16)) }
                if n > 0 { sent += n }
                // EPIPE: the scorer stopped reading; what it wrote still counts.
                if sent == input.count || (n < 0 && errno != EAGAIN && errno != EINTR) { close(writeFD); writeFD = -1 }
            }
            if outFD >= 0 {
                let n = buffer.withUnsafeMutableBytes { read(outFD, $0.baseAddress, $0.count) }
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) { close(outFD); outFD = -1 }
                if n > 0 {
                    for b in buffer[0..<n] {
                        out.append(b)
                        if b == 0x0A { lineStart = out.count; lineIndex += 1 }
                        else if out.count - lineStart > maxLineBytes { return finish(.tooMuchOutput(total: false, line: lineIndex)) }
                        if out.count > maxOutputBytes { return finish(.tooMuchOutput(total: true, line: lineIndex)) }
                    }
                }
            }
            if errFD >= 0 {
                let n = buffer.withUnsafeMutableBytes { read(errFD, $0.baseAddress, $0.count) }
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) { close(errFD); errFD = -1 }
                if n > 0 { errTail = Array((errTail + buffer[0..<n]).suffix(2048)) }
            }
        }
        return .exited(status: status ?? 0, stdout: out, stderrTail: String(decoding: errTail, as: UTF8.self))
    }

    /// This process's open file descriptors (/proc/self/fd; the directory's own is among them).
    static func openDescriptors() -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
    }

    /// posix_spawn of `/bin/sh -c command` as the leader of a new process group, with
    /// SIGPIPE back to its default (this process ignores it, and exec would pass that on).
    private func spawn(stdin: Int32, stdout: Int32, stderr: Int32) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        // Nothing else of this process reaches the scorer: MPI's sockets to its launcher's
        // daemon, the output lock, a pipe of whatever started us — a scorer that outlived its
        // batch held them. After the dup2's; glibc skips a close of an fd already closed.
        for fd in Self.openDescriptors() where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setsigmask(&attr, &mask)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let args: [String] = ["/bin/sh", "-c", command]
        let argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, environ)
        guard rc == 0 else {
            throw ScorerError("scorer command \(MessageText.quoted(command, max: 60)) could not start (\(String(cString: strerror(rc))))")
        }
        return pid
    }
}
