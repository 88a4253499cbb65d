//! Files of the repository the tests read: the repo root, multi-document YAML, the examples.

use std::path::{Path, PathBuf};

use monitoring_operator::api::MonitoringServices;
use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every document of a (multi-document) YAML file.
pub fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// The example files (`examples/**/*.yaml`), sorted, by path relative to `examples/`.
pub fn example_files() -> Vec<(String, PathBuf)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    let root = repo().join("examples");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files.into_iter().map(|p| (p.strip_prefix(&root).unwrap().to_string_lossy().into_owned(), p)).collect()
}

/// Every MonitoringServices manifest among the examples, with its file.
pub fn examples() -> Vec<(String, MonitoringServices)> {
    let mut out = Vec::new();
    for (name, path) in example_files() {
        for v in yaml_documents(&path) {
            if v["kind"] == "MonitoringServices" {
                out.push((name.clone(), serde_json::from_value(v).unwrap()));
            }
        }
    }
    out
}

/// Vector's JSON Schema names definitions after Rust types ("Inputs<String>"); `<` and `>`
/// are not valid in a URI fragment, so percent-encode them in the $refs (and only there).
pub fn encode_refs(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "$ref"
                    && let serde_json::Value::String(s) = v
                {
                    *s = s.replace('<', "%3C").replace('>', "%3E");
                } else {
                    encode_refs(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(encode_refs),
        _ => {}
    }
}
