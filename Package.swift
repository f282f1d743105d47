// swift-tools-version:5.9
// sft-dist: data-parallel supervised fine-tuning over MPI, on our own float32 tensor core.
// Layers (nothing imports upward): CMPI → Distributed; COpenBLAS → TensorCore → Models → Training → sft-dist.
import PackageDescription
import Foundation

// The tensor core's SIMD kernels are built for AVX2 + FMA on x86-64 (as llm.c builds with
// -march=native): without them every 8-wide vector is split in two and each fused
// multiply-add becomes a libm call. SFT_DIST_PORTABLE=1 builds for baseline x86-64.
// -fno-math-errno: Float.squareRoot() (a C inline in the Swift runtime's shims) then needs no
// libm fallback for negative inputs, so an 8-wide square root is one vsqrtps (AdamW), not
// eight scalar ones with a branch each; IEEE square roots are exact, so the bits are the same.
#if arch(x86_64)
let simdFlags: [SwiftSetting] = ProcessInfo.processInfo.environment["SFT_DIST_PORTABLE"] == nil
    ? [.unsafeFlags(["-Xcc", "-mavx2", "-Xcc", "-mfma", "-Xcc", "-fno-math-errno"])] : []
#else
let simdFlags: [SwiftSetting] = []
#endif

let package = Package(
    name: "sft-dist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "sft-dist", targets: ["sft-dist"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // C shims over what Swift cannot import from mpi.h / cblas.h (macros, handles).
        .systemLibrary(name: "CMPI", path: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),

        .target(name: "Distributed", dependencies: ["CMPI"]),
        .target(name: "TensorCore", dependencies: ["COpenBLAS"], swiftSettings: simdFlags),
        .target(name: "Models", dependencies: ["TensorCore"]),
        .target(name: "Training", dependencies: ["Models", "Distributed", "Yams"]),
        .executableTarget(name: "sft-dist", dependencies: [
            "Training", "Models", "TensorCore", "Distributed",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // What several test targets share: the finite-difference derivative, ranks as threads.
        .target(name: "TestSupport", dependencies: ["TensorCore", "Distributed"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "TensorCore", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Models", "TensorCore", "Distributed", "TestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed"]),
        // Launches the built `sft-dist` binary (single process and under real mpirun).
        .testTarget(name: "CLITests", dependencies: []),
    ]
)
