import Foundation
import XCTest
@testable import Training

/// `scale_rewards` takes TRL's names and, as TRL's GRPOConfig does, its booleans: true is
/// `group`, false is `none`; recipe.yaml writes the name back.
final class ScaleRewardsRecipeTests: XCTestCase {
    func flag(_ text: String) throws -> RewardScaling {
        var r = Recipe()
        try Recipe.key(named: "scale_rewards")!.read(flag: text, into: &r)
        return r.scaleRewards
    }

    func testNamesAndTRLsBooleans() throws {
        XCTAssertEqual(Recipe().scaleRewards, .group)
        for (text, scaling) in [("group", RewardScaling.group), ("batch", .batch), ("none", .none),
                                ("true", .group), ("True", .group), ("yes", .group), ("false", .none), ("False", .none), ("off", .none)] {
            XCTAssertEqual(try flag(text), scaling, text)
        }
        for (yaml, scaling) in [("group", RewardScaling.group), ("batch", .batch), ("none", .none), ("true", .group), ("false", .none)] {
            let r = try Recipe.parse(yaml: "scale_rewards: \(yaml)\n", source: "r.yaml")
            XCTAssertEqual(r.scaleRewards, scaling, yaml)
            XCTAssertTrue(r.yaml.contains("scale_rewards: \(scaling.rawValue)\n"), r.yaml)
            XCTAssertEqual(try Recipe.parse(yaml: r.yaml, source: "recipe.yaml"), r, "recipe.yaml reads back")
        }
        XCTAssertThrowsError(try flag("std")) { XCTAssertEqual("\($0)", "--scale-rewards must be one of group, batch, none (got std)") }
        XCTAssertThrowsError(try Recipe.parse(yaml: "scale_rewards: 1\n", source: "r.yaml")) {
            XCTAssertTrue("\($0)".contains("scale_rewards must be one of group, batch, none (got 1)"), "\($0)")
        }
    }

    /// A checkpoint's state.json holds the name, as before the key became an enum.
    func testTheCheckpointFormIsTheName() throws {
        var r = Recipe()
        r.scaleRewards = .none
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(r)) as! [String: Any]
        XCTAssertEqual(json["scale_rewards"] as? String, "none")
        XCTAssertEqual(try JSONDecoder().decode(Recipe.self, from: Data(#"{"scale_rewards": "batch"}"#.utf8)).scaleRewards, .batch)
    }
}
