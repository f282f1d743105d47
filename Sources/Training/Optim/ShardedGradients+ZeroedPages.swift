import Distributed
import TensorCore

extension ShardedGradients {
    /// ZeRO-1 (`releasesGradients` false) keeps the full gradient; ZeRO-2 returns each reduced
    /// piece's pages with `ZeroedPages.release`, the one routine that releases a range of the
    /// gradient buffer (frozen ranges use it too, `TrainableSet`).
    public convenience init(comm: Communicator, gradients: UnsafeMutablePointer<Float>, plan: ShardPlan,
                            releasesGradients: Bool, maxFloatsInFlight: Int = 1 << 21) {
        self.init(comm: comm, gradients: gradients, plan: plan,
                  releasePages: releasesGradients ? { ZeroedPages.release($0, $1) } : nil, maxFloatsInFlight: maxFloatsInFlight)
    }
}
