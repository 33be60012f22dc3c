//! Every case of Swift 2.38's golden vectors for the pure primitives.

mod common;

use common::fixture_json as fixture;
use rowsync::swift::hash::{partition_of_digest, storage_directory};
use rowsync::swift::merge::{update_new_item_from_existing, ObjectItem};
use rowsync::swift::timestamp::{normalize_timestamp, Timestamp};
use rowsync::swift::{chexor, decode_timestamps, encode_timestamps, HashPathConfig};
use serde_json::Value;

fn opt_str(v: &Value) -> Option<&str> {
    v.as_str()
}

#[test]
fn hash_path_every_case() {
    let info = fixture("INFO.json");
    let conf = HashPathConfig::new(
        info["hash_path_prefix"].as_str().unwrap(),
        info["hash_path_suffix"].as_str().unwrap(),
    );
    let cases = fixture("hash_path.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 300);
    for case in cases {
        let account = case["account"].as_str().unwrap();
        let container = opt_str(&case["container"]);
        let object = opt_str(&case["object"]);
        let digest = conf.hash_path_raw(account, container, object).unwrap();
        let hash = hex::encode(digest);
        assert_eq!(hash, case["hash"].as_str().unwrap(), "{case}");
        for (power, part) in case["partition_by_part_power"].as_object().unwrap() {
            let power: u32 = power.parse().unwrap();
            assert_eq!(
                partition_of_digest(&digest, power).unwrap() as u64,
                part.as_u64().unwrap(),
                "{case}"
            );
        }
        let p10 = partition_of_digest(&digest, 10).unwrap();
        assert_eq!(
            storage_directory("containers", p10, &hash),
            case["storage_directory"].as_str().unwrap()
        );
    }
}

#[test]
fn timestamps_every_case() {
    let f = fixture("timestamps.json");
    let cases = f["timestamps"].as_array().unwrap();
    assert_eq!(cases.len(), 200);
    for case in cases {
        let input = case["input"].as_str().unwrap();
        let offset = case["offset"].as_u64().unwrap();
        let ts = Timestamp::parse(input).unwrap().with_offset(offset);
        assert_eq!(ts.internal(), case["internal"].as_str().unwrap(), "{case}");
        assert_eq!(ts.normal(), case["normal"].as_str().unwrap(), "{case}");
        assert_eq!(
            normalize_timestamp(input).unwrap(),
            case["normalize_timestamp"].as_str().unwrap()
        );
        // internal form parses back to the same timestamp
        assert_eq!(Timestamp::parse(&ts.internal()).unwrap(), ts);
    }
    let cases = f["encode_timestamps"].as_array().unwrap();
    assert_eq!(cases.len(), 200);
    for case in cases {
        let p = |v: &Value| v.as_str().map(|s| Timestamp::parse(s).unwrap());
        let data = p(&case["data"]).unwrap();
        let encoded = encode_timestamps(data, p(&case["ctype"]), p(&case["meta"]));
        assert_eq!(encoded, case["encoded"].as_str().unwrap(), "{case}");
        let (d, c, m) = decode_timestamps(&encoded).unwrap();
        let decoded: Vec<String> = [d, c, m].iter().map(|t| t.internal()).collect();
        let expect: Vec<String> = case["decoded"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(decoded, expect, "{case}");
    }
}

#[test]
fn chexor_every_step() {
    let cases = fixture("chexor.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 100);
    let mut prev: Option<String> = None;
    for case in cases {
        let old = case["old"].as_str().unwrap();
        if let Some(p) = &prev {
            assert_eq!(p, old, "steps are chained");
        }
        let new = chexor(
            old,
            case["name"].as_str().unwrap(),
            case["timestamp"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(new, case["new"].as_str().unwrap(), "{case}");
        prev = Some(new);
    }
}

#[test]
fn merge_rule_every_case() {
    let cases = fixture("merge_rule.json");
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 300);
    for case in cases {
        let mut new: ObjectItem = serde_json::from_value(case["new"].clone()).unwrap();
        let existing: Option<ObjectItem> = if case["existing"].is_null() {
            None
        } else {
            Some(serde_json::from_value(case["existing"].clone()).unwrap())
        };
        let got = update_new_item_from_existing(&mut new, existing.as_ref()).unwrap();
        assert_eq!(got, case["returns"].as_bool().unwrap(), "{case}");
        let after = &case["new_after"];
        let expect: ObjectItem = serde_json::from_value(after.clone()).unwrap();
        assert_eq!(new.created_at, expect.created_at, "{case}");
        assert_eq!(new.size, expect.size, "{case}");
        assert_eq!(new.etag, expect.etag, "{case}");
        assert_eq!(new.deleted, expect.deleted, "{case}");
        assert_eq!(new.content_type, expect.content_type, "{case}");
        assert_eq!(new.storage_policy_index, expect.storage_policy_index);
        assert_eq!(new.ctype_timestamp, expect.ctype_timestamp, "{case}");
        assert_eq!(new.meta_timestamp, expect.meta_timestamp, "{case}");
        assert_eq!(
            new.data_timestamp.as_deref(),
            after["data_timestamp"].as_str(),
            "{case}"
        );
    }
}
