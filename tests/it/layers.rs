//! The layering ARCHITECTURE.md documents, checked against the code: every `crate::` path in
//! `src/` must name a module in a lower layer than the module it is written in (or the module
//! itself). A new import against the order fails here, with the line that did it.
//!
//! The folders `dns`, `traffic`, `control` and `tools` group modules and are not layers
//! themselves: `crate::dns::resolve` is the module `resolve`, and so is every file under
//! `src/dns/resolve/`.

use crate::harness::repo;
use std::collections::HashMap;
use std::path::Path;

/// The layers, top first, from the `layers` block in ARCHITECTURE.md.
fn layers() -> HashMap<String, usize> {
    let doc = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let block = doc
        .split("```layers\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("ARCHITECTURE.md has a ```layers block");
    let mut rank = HashMap::new();
    for (i, line) in block.lines().enumerate() {
        for m in line.split_whitespace() {
            assert!(rank.insert(m.to_string(), i).is_none(), "{m} is listed twice");
        }
    }
    rank
}

/// The folders that only group modules.
const FOLDERS: [&str; 4] = ["dns", "traffic", "control", "tools"];

/// The module each `crate::` path in `code` names (comments skipped), with its line: the first
/// segment, or the second after a grouping folder.
fn imports(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(f) = FOLDERS.iter().find(|f| rest.starts_with(&format!("{f}::"))) {
                rest = &rest[f.len() + 2..];
            }
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::c, d}`: the first segment of each item at the top level.
                let mut depth = 0;
                let mut item_start = true;
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            rest = &group[j..];
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        c if item_start && (c.is_alphanumeric() || c == '_') => {
                            let word: String = group[j..]
                                .chars()
                                .take_while(|c| c.is_alphanumeric() || *c == '_')
                                .collect();
                            out.push((n + 1, word));
                            item_start = false;
                        }
                        _ => {}
                    }
                }
            } else {
                let word: String =
                    rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                out.push((n + 1, word));
            }
        }
    }
    out
}

fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            visit(&p, files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            files.push(p);
        }
    }
}

#[test]
fn modules_import_only_downwards() {
    let rank = layers();
    let src = repo().join("src");
    let mut files = Vec::new();
    visit(&src, &mut files);
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let parts: Vec<String> =
            rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        let module = match parts.as_slice() {
            [folder, file] if FOLDERS.contains(&folder.as_str()) && file == "mod.rs" => continue,
            [folder, inner, ..] if FOLDERS.contains(&folder.as_str()) => inner.clone(),
            [first, ..] => first.clone(),
            [] => continue,
        };
        let module = module.trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        let Some(&mine) = rank.get(&module) else {
            wrong
                .push(format!("src/{}: module {module} is not in the layers block", rel.display()));
            continue;
        };
        for (line, to) in imports(&std::fs::read_to_string(f).unwrap()) {
            if to == module || to == "self" {
                continue;
            }
            match rank.get(&to) {
                Some(&theirs) if theirs > mine => {}
                Some(_) => wrong.push(format!(
                    "src/{}:{line}: {module} imports {to}, which is not below it",
                    rel.display()
                )),
                None => wrong
                    .push(format!("src/{}:{line}: {to} is not in the layers block", rel.display())),
            }
        }
    }
    assert!(wrong.is_empty(), "imports against ARCHITECTURE.md's layers:\n{}", wrong.join("\n"));
}

#[test]
fn the_import_scanner_reads_groups() {
    let got = imports(
        "use crate::{a, b::{c, d}, e};\nlet x = crate::f::g();\n// crate::h\nuse crate::dns::zone::X;\nuse crate::traffic::{policy, geo};\n",
    );
    let got: Vec<&str> = got.iter().map(|(_, w)| w.as_str()).collect();
    assert_eq!(got, ["a", "b", "e", "f", "zone", "policy", "geo"]);
}

/// `docs/configuration.md` lists exactly the keys the configuration schema has, table by
/// table: a key added to the schema without a line in the reference fails here, and so does
/// a documented key the schema does not have.
#[test]
fn the_configuration_reference_matches_the_schema() {
    let schema = std::fs::read_to_string(repo().join("src/config/schema.rs")).unwrap();
    let doc = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    // Each Raw struct's keys, as TOML spells them (serde renames applied).
    let mut structs: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut current: Option<String> = None;
    let mut rename: Option<String> = None;
    for line in schema.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("pub(super) struct ") {
            current = rest.strip_suffix(" {").map(|n| n.to_string());
            continue;
        }
        if line == "}" {
            current = None;
        }
        if let Some(r) = line.split("rename = \"").nth(1) {
            rename = r.split('"').next().map(str::to_string);
            continue;
        }
        if let (Some(s), Some(field)) = (&current, line.strip_prefix("pub(super) ")) {
            let name = field.split(':').next().unwrap().to_string();
            structs.entry(s.clone()).or_default().push(rename.take().unwrap_or(name));
        }
    }
    let sections = [
        ("RawConfig", "## Top level"),
        ("RawServer", "## `[server]`"),
        ("RawRrl", "## `[server.rrl]`"),
        ("RawCookies", "## `[server.cookies]`"),
        ("RawKey", "## `[[key]]`"),
        ("RawAdmin", "## `[admin]`"),
        ("RawGeoIp", "## `[geoip]`"),
        ("RawZone", "## `[[zone]]`"),
        ("RawProfile", "## `[[profile]]`"),
        ("RawView", "## `[[profile.view]]`"),
        ("RawEndpoint", "## `[[profile.endpoint]]`"),
        ("RawMonitor", "## `[profile.monitor]`"),
        ("RawLoad", "## `[profile.endpoint.load]`"),
        ("RawClient", "## `client = { ... }`"),
        ("RawBurst", "## `[profile.burst]`"),
        ("RawHook", "## `[profile.burst.on_warm]`"),
        ("RawFleet", "## `[profile.burst.fleet]`"),
        ("RawFleetShared", "## `[fleet]`"),
    ];
    let documented = |heading: &str| -> Vec<String> {
        let start = doc
            .find(heading)
            .unwrap_or_else(|| panic!("no section {heading} in docs/configuration.md"));
        let body = &doc[start + heading.len()..];
        let body = &body[..body.find("\n## ").unwrap_or(body.len())];
        body.lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_string)
            .collect()
    };
    let mut problems = Vec::new();
    for (s, heading) in sections {
        let mut have = structs.remove(s).unwrap_or_else(|| panic!("no struct {s} in schema.rs"));
        let mut doc_keys = documented(heading);
        have.sort();
        doc_keys.sort();
        for k in have.iter().filter(|k| !doc_keys.contains(k)) {
            problems.push(format!("{heading}: `{k}` is in the schema but not documented"));
        }
        for k in doc_keys.iter().filter(|k| !have.contains(k)) {
            problems.push(format!("{heading}: `{k}` is documented but not in the schema"));
        }
    }
    // Every table of the schema has a section (the monitor's `false | true | table` is a
    // hand-written Deserialize over RawMonitor, covered above).
    structs.retain(|_, keys| !keys.is_empty());
    assert!(structs.is_empty(), "schema tables without a section: {:?}", structs.keys());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
