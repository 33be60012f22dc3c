//! REPLICATE request bodies: a JSON list `[op, args...]`, parsed strictly
//! into typed ops (unknown ops, wrong argument counts or types are errors
//! that the server answers with 400), and encoded as Python's `json.dumps`
//! would write them.

use serde_json::value::RawValue;
use serde_json::Value;

use crate::db::shard::ShardRange;
use crate::db::{DbItem, SyncPoint};
use crate::swift::container_row::ContainerItem;
use crate::swift::merge::ObjectItem;
use crate::swift::pyjson;

/// A row type as it travels in `merge_items`: written as Python's
/// `json.dumps` of `get_items_since` writes it, keys in column order.
pub trait WireItem: DbItem {
    fn write_json(&self, out: &mut String);
}

/// The sender's replication info as carried by a `sync` request.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncArgs {
    pub max_row: i64,
    pub hash: String,
    pub id: String,
    pub created_at: String,
    pub put_timestamp: String,
    pub delete_timestamp: String,
    /// The raw metadata string (JSON object text, or "").
    pub metadata: String,
    /// `(status_changed_at, count, storage_policy_index)`, sent by container
    /// senders in clusters with more than one storage policy.
    pub policy: Option<(String, i64, i64)>,
}

/// The REPLICATE op names, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpName {
    Sync,
    MergeItems,
    MergeSyncs,
    CompleteRsync,
    RsyncThenMerge,
    GetShardRanges,
    MergeShardRanges,
    PartitionDbs,
}

impl OpName {
    pub const ALL: [OpName; 8] = [
        OpName::Sync,
        OpName::MergeItems,
        OpName::MergeSyncs,
        OpName::CompleteRsync,
        OpName::RsyncThenMerge,
        OpName::GetShardRanges,
        OpName::MergeShardRanges,
        OpName::PartitionDbs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OpName::Sync => "sync",
            OpName::MergeItems => "merge_items",
            OpName::MergeSyncs => "merge_syncs",
            OpName::CompleteRsync => "complete_rsync",
            OpName::RsyncThenMerge => "rsync_then_merge",
            OpName::GetShardRanges => "get_shard_ranges",
            OpName::MergeShardRanges => "merge_shard_ranges",
            OpName::PartitionDbs => "rowsync_partition_dbs",
        }
    }

    pub fn parse(s: &str) -> Option<OpName> {
        OpName::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// One REPLICATE op on DBs whose rows are `I`.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicateOp<I = ObjectItem> {
    Sync(SyncArgs),
    MergeItems {
        items: Vec<I>,
        source: Option<String>,
    },
    MergeSyncs(Vec<SyncPoint>),
    CompleteRsync {
        tmp_name: String,
        db_basename: Option<String>,
    },
    RsyncThenMerge {
        tmp_name: String,
        db_basename: Option<String>,
    },
    GetShardRanges,
    MergeShardRanges {
        ranges: Vec<ShardRange>,
        source: Option<String>,
    },
    /// rowsync between rowsync nodes only: the hashes of the DBs the
    /// path's partition holds on the device (the path's hash is ignored),
    /// or, with a list of partitions, `{"<part>": [hashes]}` for each (at
    /// most [`MAX_LISTED_PARTITIONS`]). Swift answers it 4xx, which tells
    /// a sender the peer is Swift.
    PartitionDbs(Option<Vec<u32>>),
}

/// The most partitions one `rowsync_partition_dbs` may list.
pub const MAX_LISTED_PARTITIONS: usize = 4096;

/// The header a rowsync server puts on its REPLICATE answers: the most
/// rows one `merge_items` it receives may carry. Its presence also says the
/// server takes whole DBs over HTTP (`REPLICATE /<device>/tmp/<name>`).
/// Swift ignores it; Swift servers never send it.
pub const MERGE_ROWS_HEADER: &str = "x-rowsync-merge-rows";

/// The most rows a sender puts in one `merge_items` to a rowsync peer:
/// this many times `per_diff`, within what the peer advertises.
pub const MERGE_BATCH_GROWTH: usize = 10;

/// The rows per `merge_items` a receiver with this body limit advertises:
/// room for rows of 4 KiB each (object names are at most 1 KiB), at most
/// 10,000.
pub fn merge_rows_for_body_limit(limit: u64) -> usize {
    usize::try_from(limit / 4096)
        .unwrap_or(usize::MAX)
        .clamp(1, 10_000)
}

/// Why a REPLICATE body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("Invalid object type")]
    NotAList,
    #[error("empty REPLICATE list: no op")]
    Empty,
    #[error("op must be a string")]
    OpNotString,
    #[error("unknown REPLICATE op {0:?}")]
    UnknownOp(String),
    #[error("{op}: expected {expected} arguments, got {got}")]
    ArgCount {
        op: &'static str,
        expected: &'static str,
        got: usize,
    },
    #[error("{op}: argument {index} ({name}) {problem}")]
    Arg {
        op: &'static str,
        index: usize,
        name: &'static str,
        problem: String,
    },
}

fn arg_err(
    op: &'static str,
    index: usize,
    name: &'static str,
    problem: impl Into<String>,
) -> WireError {
    WireError::Arg {
        op,
        index,
        name,
        problem: problem.into(),
    }
}

fn want_str(
    op: &'static str,
    args: &[Value],
    i: usize,
    name: &'static str,
) -> Result<String, WireError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(arg_err(
            op,
            i + 1,
            name,
            format!("must be a string, got {}", type_name(v)),
        )),
        None => Err(arg_err(op, i + 1, name, "is missing")),
    }
}

fn want_int(
    op: &'static str,
    args: &[Value],
    i: usize,
    name: &'static str,
) -> Result<i64, WireError> {
    match args.get(i) {
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| arg_err(op, i + 1, name, "must be an integer")),
        Some(v) => Err(arg_err(
            op,
            i + 1,
            name,
            format!("must be an integer, got {}", type_name(v)),
        )),
        None => Err(arg_err(op, i + 1, name, "is missing")),
    }
}

fn opt_source(op: &'static str, args: &[Value], i: usize) -> Result<Option<String>, WireError> {
    match args.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(arg_err(
            op,
            i + 1,
            "source",
            format!("must be a string, got {}", type_name(v)),
        )),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn count(
    op: &'static str,
    args: &[Value],
    min: usize,
    max: usize,
    expected: &'static str,
) -> Result<(), WireError> {
    if args.len() < min || args.len() > max {
        return Err(WireError::ArgCount {
            op,
            expected,
            got: args.len(),
        });
    }
    Ok(())
}

impl<I: WireItem> ReplicateOp<I> {
    /// The op's name.
    pub fn op_name(&self) -> OpName {
        match self {
            ReplicateOp::Sync(_) => OpName::Sync,
            ReplicateOp::MergeItems { .. } => OpName::MergeItems,
            ReplicateOp::MergeSyncs(_) => OpName::MergeSyncs,
            ReplicateOp::CompleteRsync { .. } => OpName::CompleteRsync,
            ReplicateOp::RsyncThenMerge { .. } => OpName::RsyncThenMerge,
            ReplicateOp::GetShardRanges => OpName::GetShardRanges,
            ReplicateOp::MergeShardRanges { .. } => OpName::MergeShardRanges,
            ReplicateOp::PartitionDbs(_) => OpName::PartitionDbs,
        }
    }

    /// The op's name on the wire.
    pub fn name(&self) -> &'static str {
        self.op_name().as_str()
    }

    /// Parses a REPLICATE body.
    pub fn parse(body: &[u8]) -> Result<ReplicateOp<I>, WireError> {
        // The top-level list as raw JSON slices: the list argument of the
        // list-carrying ops (rows, sync points, shard ranges, partitions)
        // is read straight into its type, never into a JSON tree; the
        // other (small) arguments become values.
        let raw: Vec<&RawValue> = match serde_json::from_slice(body) {
            Ok(raw) => raw,
            Err(e) => {
                return Err(match serde_json::from_slice::<Value>(body) {
                    Ok(_) => WireError::NotAList,
                    Err(_) => WireError::Json(e.to_string()),
                })
            }
        };
        let op_value: Value = match raw.first() {
            Some(r) => serde_json::from_str(r.get()).map_err(|e| WireError::Json(e.to_string()))?,
            None => return Err(WireError::Empty),
        };
        let carries_list = matches!(
            op_value.as_str(),
            Some("merge_items" | "merge_syncs" | "merge_shard_ranges" | "rowsync_partition_dbs")
        );
        let mut first: Option<&RawValue> = None;
        let mut list = Vec::with_capacity(raw.len());
        list.push(op_value);
        for (i, r) in raw.iter().enumerate().skip(1) {
            if carries_list && i == 1 {
                first = Some(r);
                list.push(Value::Null);
            } else {
                list.push(
                    serde_json::from_str(r.get()).map_err(|e| WireError::Json(e.to_string()))?,
                );
            }
        }
        let mut first = first.map(|r| r.get());
        let (op, args) = list.split_first().ok_or(WireError::Empty)?;
        let Value::String(op) = op else {
            return Err(WireError::OpNotString);
        };
        match op.as_str() {
            "sync" => {
                const OP: &str = "sync";
                count(OP, args, 7, 10, "7 or 10")?;
                let policy = if args.len() > 9 {
                    Some((
                        want_str(OP, args, 7, "status_changed_at")?,
                        want_int(OP, args, 8, "count")?,
                        want_int(OP, args, 9, "storage_policy_index")?,
                    ))
                } else {
                    None
                };
                let metadata = match args.get(6) {
                    Some(Value::Null) => String::new(),
                    _ => want_str(OP, args, 6, "metadata")?,
                };
                Ok(ReplicateOp::Sync(SyncArgs {
                    max_row: want_int(OP, args, 0, "max_row")?,
                    hash: want_str(OP, args, 1, "hash")?,
                    id: want_str(OP, args, 2, "id")?,
                    created_at: want_str(OP, args, 3, "created_at")?,
                    put_timestamp: want_str(OP, args, 4, "put_timestamp")?,
                    delete_timestamp: want_str(OP, args, 5, "delete_timestamp")?,
                    metadata,
                    policy,
                }))
            }
            "merge_items" => {
                const OP: &str = "merge_items";
                count(OP, args, 1, 2, "1 or 2")?;
                let items: Vec<I> = serde_json::from_str(first.take().unwrap_or("null"))
                    .map_err(|e| arg_err(OP, 1, "items", format!("is not a list of rows: {e}")))?;
                let source = opt_source(OP, args, 1)?;
                if source.is_some() && items.last().is_some_and(|i| i.rowid().is_none()) {
                    return Err(arg_err(OP, 1, "items", "last item has no ROWID"));
                }
                Ok(ReplicateOp::MergeItems { items, source })
            }
            "merge_syncs" => {
                const OP: &str = "merge_syncs";
                count(OP, args, 1, 1, "1")?;
                let points: Vec<SyncPoint> = serde_json::from_str(first.take().unwrap_or("null"))
                    .map_err(|e| {
                    arg_err(
                        OP,
                        1,
                        "sync points",
                        format!("is not a list of sync points: {e}"),
                    )
                })?;
                Ok(ReplicateOp::MergeSyncs(points))
            }
            "complete_rsync" | "rsync_then_merge" => {
                let op_name: &'static str = if op == "complete_rsync" {
                    "complete_rsync"
                } else {
                    "rsync_then_merge"
                };
                count(op_name, args, 1, 2, "1 or 2")?;
                let tmp_name = want_str(op_name, args, 0, "tmp file name")?;
                let db_basename = match args.get(1) {
                    None | Some(Value::Null) => None,
                    _ => Some(want_str(op_name, args, 1, "db file name")?),
                };
                Ok(if op_name == "complete_rsync" {
                    ReplicateOp::CompleteRsync {
                        tmp_name,
                        db_basename,
                    }
                } else {
                    ReplicateOp::RsyncThenMerge {
                        tmp_name,
                        db_basename,
                    }
                })
            }
            "get_shard_ranges" => {
                count("get_shard_ranges", args, 0, 0, "0")?;
                Ok(ReplicateOp::GetShardRanges)
            }
            "rowsync_partition_dbs" => {
                const OP: &str = "rowsync_partition_dbs";
                count(OP, args, 0, 1, "0 or 1")?;
                let Some(v) = first.take() else {
                    return Ok(ReplicateOp::PartitionDbs(None));
                };
                let parts: Vec<u32> = serde_json::from_str(v).map_err(|e| {
                    arg_err(
                        OP,
                        1,
                        "partitions",
                        format!("is not a list of partitions: {e}"),
                    )
                })?;
                if parts.len() > MAX_LISTED_PARTITIONS {
                    return Err(arg_err(
                        OP,
                        1,
                        "partitions",
                        format!("lists more than {MAX_LISTED_PARTITIONS}"),
                    ));
                }
                Ok(ReplicateOp::PartitionDbs(Some(parts)))
            }
            "merge_shard_ranges" => {
                const OP: &str = "merge_shard_ranges";
                count(OP, args, 1, 2, "1 or 2")?;
                let ranges: Vec<ShardRange> = serde_json::from_str(first.take().unwrap_or("null"))
                    .map_err(|e| {
                        arg_err(
                            OP,
                            1,
                            "shard ranges",
                            format!("is not a list of shard ranges: {e}"),
                        )
                    })?;
                Ok(ReplicateOp::MergeShardRanges {
                    ranges,
                    source: opt_source(OP, args, 1)?,
                })
            }
            other => Err(WireError::UnknownOp(other.chars().take(64).collect())),
        }
    }

    /// The JSON body, as Python's `json.dumps([op, *args])`.
    pub fn to_body(&self) -> Vec<u8> {
        let mut list = vec![Value::String(self.name().into())];
        match self {
            ReplicateOp::Sync(a) => {
                list.extend([
                    a.max_row.into(),
                    a.hash.clone().into(),
                    a.id.clone().into(),
                    a.created_at.clone().into(),
                    a.put_timestamp.clone().into(),
                    a.delete_timestamp.clone().into(),
                    a.metadata.clone().into(),
                ]);
                if let Some((sca, count, spi)) = &a.policy {
                    list.extend([sca.clone().into(), (*count).into(), (*spi).into()]);
                }
            }
            ReplicateOp::MergeItems { items, source } => {
                // The hot path: rows are written straight to text.
                return merge_items_body(items, source.as_deref()).into_bytes();
            }
            ReplicateOp::MergeSyncs(points) => {
                let pts: Vec<Value> = points
                    .iter()
                    .map(|p| serde_json::json!({"remote_id": p.remote_id, "sync_point": p.sync_point}))
                    .collect();
                list.push(Value::Array(pts));
            }
            ReplicateOp::CompleteRsync {
                tmp_name,
                db_basename,
            }
            | ReplicateOp::RsyncThenMerge {
                tmp_name,
                db_basename,
            } => {
                list.push(tmp_name.clone().into());
                if let Some(b) = db_basename {
                    list.push(b.clone().into());
                }
            }
            ReplicateOp::GetShardRanges | ReplicateOp::PartitionDbs(None) => {}
            ReplicateOp::PartitionDbs(Some(parts)) => {
                list.push(Value::from(parts.clone()));
            }
            ReplicateOp::MergeShardRanges { ranges, source } => {
                list.push(serde_json::to_value(ranges).unwrap_or(Value::Null));
                list.push(source.clone().map(Value::String).unwrap_or(Value::Null));
            }
        }
        pyjson::dumps(&Value::Array(list)).into_bytes()
    }
}

/// `json.dumps(["merge_items", items, source])` without building a value
/// tree; keys in `get_items_since` order.
fn merge_items_body<I: WireItem>(items: &[I], source: Option<&str>) -> String {
    let mut out = String::with_capacity(64 + items.len() * 192);
    out.push_str("[\"merge_items\", [");
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        it.write_json(&mut out);
    }
    out.push_str("], ");
    match source {
        Some(s) => pyjson::write_str(&mut out, s),
        None => out.push_str("null"),
    }
    out.push(']');
    out
}

impl WireItem for ObjectItem {
    fn write_json(&self, out: &mut String) {
        use std::fmt::Write;
        let it = self;
        out.push('{');
        if let Some(rowid) = it.rowid {
            let _ = write!(out, "\"ROWID\": {rowid}, ");
        }
        out.push_str("\"name\": ");
        pyjson::write_str(out, &it.name);
        out.push_str(", \"created_at\": ");
        pyjson::write_str(out, &it.created_at);
        let _ = write!(out, ", \"size\": {}, \"content_type\": ", it.size);
        pyjson::write_str(out, &it.content_type);
        out.push_str(", \"etag\": ");
        pyjson::write_str(out, &it.etag);
        let _ = write!(
            out,
            ", \"deleted\": {}, \"storage_policy_index\": {}",
            it.deleted, it.storage_policy_index
        );
        for (key, v) in [
            ("ctype_timestamp", &it.ctype_timestamp),
            ("meta_timestamp", &it.meta_timestamp),
        ] {
            if let Some(v) = v {
                let _ = write!(out, ", \"{key}\": ");
                pyjson::write_str(out, v);
            }
        }
        out.push('}');
    }
}

impl WireItem for ContainerItem {
    fn write_json(&self, out: &mut String) {
        use std::fmt::Write;
        out.push('{');
        if let Some(rowid) = self.rowid {
            let _ = write!(out, "\"ROWID\": {rowid}, ");
        }
        out.push_str("\"name\": ");
        pyjson::write_str(out, &self.name);
        out.push_str(", \"put_timestamp\": ");
        pyjson::write_str(out, &self.put_timestamp);
        out.push_str(", \"delete_timestamp\": ");
        pyjson::write_str(out, &self.delete_timestamp);
        let _ = write!(
            out,
            ", \"object_count\": {}, \"bytes_used\": {}, \"deleted\": {}, \"storage_policy_index\": {}}}",
            self.object_count, self.bytes_used, self.deleted, self.storage_policy_index
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let ops = vec![
            ReplicateOp::Sync(SyncArgs {
                max_row: 5,
                hash: "h".into(),
                id: "id".into(),
                created_at: "1".into(),
                put_timestamp: "2".into(),
                delete_timestamp: "0".into(),
                metadata: "{\"k\": [\"v\", \"1\"]}".into(),
                policy: Some(("1".into(), 3, 1)),
            }),
            ReplicateOp::MergeItems {
                items: vec![{
                    let mut i = ObjectItem::new("n", "1.00000", 1, "t", "e");
                    i.rowid = Some(4);
                    i
                }],
                source: Some("src".into()),
            },
            ReplicateOp::MergeSyncs(vec![SyncPoint::new("a", 3)]),
            ReplicateOp::CompleteRsync {
                tmp_name: "x".into(),
                db_basename: Some("h.db".into()),
            },
            ReplicateOp::RsyncThenMerge {
                tmp_name: "x".into(),
                db_basename: None,
            },
            ReplicateOp::GetShardRanges,
            ReplicateOp::PartitionDbs(None),
            ReplicateOp::PartitionDbs(Some(vec![3, 1, 4])),
        ];
        for op in ops {
            assert_eq!(ReplicateOp::<ObjectItem>::parse(&op.to_body()).unwrap(), op);
        }
    }

    #[test]
    fn merge_items_body_is_python_json() {
        let mut it = ObjectItem::new("d\u{e9}j\u{e0}\"1", "1.00000", 1, "t", "e");
        it.rowid = Some(4);
        let op = ReplicateOp::MergeItems {
            items: vec![it.clone()],
            source: Some("s".into()),
        };
        let via_values = {
            let list = Value::Array(vec![
                "merge_items".into(),
                serde_json::to_value(vec![it]).unwrap(),
                "s".into(),
            ]);
            pyjson::dumps(&list)
        };
        assert_eq!(String::from_utf8(op.to_body()).unwrap(), via_values);
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            ReplicateOp::<ObjectItem>::parse(b"nope"),
            Err(WireError::Json(_))
        ));
        assert_eq!(
            ReplicateOp::<ObjectItem>::parse(b"{}"),
            Err(WireError::NotAList)
        );
        assert_eq!(
            ReplicateOp::<ObjectItem>::parse(b"[]"),
            Err(WireError::Empty)
        );
        assert_eq!(
            ReplicateOp::<ObjectItem>::parse(b"[1]"),
            Err(WireError::OpNotString)
        );
        assert!(matches!(
            ReplicateOp::<ObjectItem>::parse(b"[\"__init__\"]"),
            Err(WireError::UnknownOp(_))
        ));
        assert!(matches!(
            ReplicateOp::<ObjectItem>::parse(b"[\"sync\", 1]"),
            Err(WireError::ArgCount { .. })
        ));
        assert!(matches!(
            ReplicateOp::<ObjectItem>::parse(
                b"[\"sync\", \"1\", \"h\", \"i\", \"1\", \"1\", \"0\", \"\"]"
            ),
            Err(WireError::Arg { .. })
        ));
        assert!(matches!(
            ReplicateOp::<ObjectItem>::parse(br#"["merge_items", [{"name": "x"}], "s"]"#),
            Err(WireError::Arg { .. })
        ));
        assert!(matches!(
            ReplicateOp::<ObjectItem>::parse(br#"["merge_items", [{"name": "x", "created_at": "1", "size": 1, "content_type": "t", "etag": "e", "deleted": 0}], "s"]"#),
            Err(WireError::Arg { .. })
        ));
        assert!(matches!(
            ReplicateOp::<ObjectItem>::parse(br#"["complete_rsync", 5]"#),
            Err(WireError::Arg { .. })
        ));
    }
}
