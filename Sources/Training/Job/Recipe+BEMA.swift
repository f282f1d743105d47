import Foundation

extension Recipe {
    /// The schedule `--bema` runs (BiasCorrectedEMA.swift), from its keys.
    public var bemaSchedule: BiasCorrectedEMA.Schedule {
        var s = BiasCorrectedEMA.Schedule()
        s.updateFreq = self.bemaUpdateFreq; s.updateAfter = self.bemaUpdateAfter; s.lag = self.bemaLag
        s.emaPower = self.bemaEmaPower; s.biasPower = self.bemaBiasPower; s.multiplier = self.bemaMultiplier; s.minEMAMultiplier = self.bemaMinEmaMultiplier
        return s
    }

    /// The bema_* keys act only with `bema`; an average that would never move (its first update
    /// after the run's last step) or whose EMA weight exceeds 1 (an extrapolation, not an
    /// average) is refused rather than written as `OUT/bema/`.
    func checkBEMA() throws {
        let k = Recipe.declared
        let keys: [any AnyRecipeKey] = [k.bemaUpdateFreq, k.bemaEmaPower, k.bemaBiasPower, k.bemaLag, k.bemaUpdateAfter,
                                        k.bemaMultiplier, k.bemaMinEmaMultiplier]
        guard self.bema else {
            for key in keys where deliberateAny(key) && !switchedOff(key, by: k.bema) {
                throw RecipeError("\(named(key)) sets how bema (--bema) averages the weights: without it no average is kept and \(key.name) has no effect")
            }
            return
        }
        let s = bemaSchedule, first = s.firstUpdate
        if s.beta(first) > 1 {
            throw RecipeError("\(named(k.bemaLag)) \(s.lag) with \(named(k.bemaMultiplier)) \(text(s.multiplier)): the EMA's weight β_t = (lag + multiplier·t)^−\(text(s.emaPower)) is \(text(s.beta(first))) at the first update (step \(first)), more than 1 — an extrapolation, not an average; make lag + multiplier·\(first) at least 1 (TRL's default lag is 10)")
        }
        if self.numTrainEpochs == 0 { try checkBEMAInterval() }
    }

    /// A first update after the last step would leave `OUT/bema/` at the initial weights.
    func checkBEMAInterval() throws {
        let k = Recipe.declared
        guard self.bema && bemaSchedule.firstUpdate > self.steps else { return }
        let freq = deliberate(k.bemaUpdateFreq) ? "\(named(k.bemaUpdateFreq)) \(self.bemaUpdateFreq)" : "bema_update_freq (default \(self.bemaUpdateFreq), --bema-update-freq)"
        let after = self.bemaUpdateAfter > 0 ? " after \(named(k.bemaUpdateAfter)) \(self.bemaUpdateAfter)" : ""
        throw RecipeError("\(freq)\(after) first moves the average at step \(bemaSchedule.firstUpdate), after the run's \(self.steps) steps: OUT/bema/ would be the initial weights; give a smaller interval (TRL's default is 400)")
    }

    private func deliberateAny(_ key: any AnyRecipeKey) -> Bool {
        switch key {
        case let key as RecipeKey<Int>: return deliberate(key)
        case let key as RecipeKey<Double>: return deliberate(key)
        default: preconditionFailure("checkBEMA: \(key.name)")
        }
    }

    private func text(_ x: Double) -> String { String(format: "%g", x) }
}
