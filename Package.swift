// swift-tools-version:5.9
// sft-dist: data-parallel supervised fine-tuning over MPI, on our own float32 tensor core.
// Layers (nothing imports upward): CMPI → Distributed; COpenBLAS → TensorCore → Models → Training → sft-dist.
import PackageDescription

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
        .target(name: "TensorCore", dependencies: ["COpenBLAS"]),
        .target(name: "Models", dependencies: ["TensorCore"]),
        .target(name: "Training", dependencies: ["Models", "Distributed", "Yams"]),
        .executableTarget(name: "sft-dist", dependencies: [
            "Training", "Models", "TensorCore", "Distributed",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "TensorCore"], exclude: ["Fixtures"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Models", "TensorCore", "Distributed"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed"]),
        // Launches the built `sft-dist` binary (single process and under real mpirun).
        .testTarget(name: "CLITests", dependencies: []),
    ]
)
