//! Scanners a crate's tests use to hold each folder of `src/` to what its `mod.rs` says
//! it may depend on, and the pure parts to having no Workers code, so a newcomer can
//! trust the tree's story because it is checked. Text scans, no parsing: `crate::x`
//! paths outside `//` comments, and the modules a `mod.rs` gates on `wasm32`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Crates only the wasm edge may use.
const WASM_ONLY: &[&str] = &["worker::", "js_sys", "wasm_bindgen", "web_sys"];

/// The top-level modules a source text names as `crate::x` or `crate::{x, …}`,
/// outside comments.
fn crate_modules(source: &str) -> BTreeSet<String> {
    let code: String = source.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let mut found = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The items at the group's top level, nested groups skipped by depth:
            // `crate::{core::{a, b}, http::x}` names `core` and `http`.
            let mut depth = 0usize;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        found.insert(ident(&group[j..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found
}

/// The files of a folder that its `mod.rs` gates on `wasm32` (the edge).
fn wasm_files(mod_rs: &str) -> BTreeSet<String> {
    let mut gated = BTreeSet::new();
    let mut next_is_wasm = false;
    for line in mod_rs.lines().map(str::trim) {
        if line.starts_with("#[cfg(target_arch = \"wasm32\")]") {
            next_is_wasm = true;
            continue;
        }
        if let Some(module) = line.split("mod ").nth(1).filter(|_| line.ends_with(';') && !line.starts_with("//")) {
            if next_is_wasm {
                gated.insert(format!("{}.rs", module.trim_end_matches(';')));
            }
        }
        next_is_wasm = false;
    }
    gated
}

/// Every `.rs` file under `dir`, subfolders included, by its path relative to `dir`.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for path in fs::read_dir(&folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display())).filter_map(|e| e.ok()).map(|e| e.path()) {
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let name = path.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/");
                files.push((name, fs::read_to_string(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// Every use of `crate::x`, where `x` is a module of the crate (a folder or file of
/// `src`), in a folder of `src` that its rule does not allow: `rules` pairs each folder
/// with the top-level modules it may name. Items of the crate root (re-exports, macros)
/// are not modules and are allowed everywhere. One message per use.
pub fn dependency_problems(src: &Path, rules: &[(&str, &[&str])]) -> Vec<String> {
    let is_module = |name: &str| src.join(name).is_dir() || src.join(format!("{name}.rs")).is_file();
    let mut problems = Vec::new();
    for (folder, allowed) in rules {
        for (file, source) in sources(&src.join(folder)) {
            for module in crate_modules(&source) {
                if is_module(&module) && !allowed.contains(&module.as_str()) {
                    problems.push(format!("src/{folder}/{file} uses crate::{module}, which {folder}/ may not depend on"));
                }
            }
        }
    }
    problems
}

/// Files of these folders of `src` that are pure (not gated on `wasm32` in their folder's
/// `mod.rs`) but name `worker::`, `js_sys`, `wasm_bindgen` or `web_sys`: one message each,
/// with the number of pure files scanned (so a test can tell the scan found them).
pub fn workers_code_in_pure_files(src: &Path, folders: &[&str]) -> (usize, Vec<String>) {
    let mut problems = Vec::new();
    let mut pure_files = 0;
    for folder in folders {
        let files = sources(&src.join(folder));
        let mod_rs = files.iter().find(|(f, _)| f == "mod.rs").map(|(_, s)| s.as_str()).unwrap_or_default();
        let edge = wasm_files(mod_rs);
        for (file, source) in files.iter().filter(|(f, _)| !edge.contains(f)) {
            pure_files += 1;
            for forbidden in WASM_ONLY {
                if source.lines().any(|l| !l.trim_start().starts_with("//") && l.contains(forbidden)) {
                    problems.push(format!("src/{folder}/{file} is pure (not gated on wasm32) but uses {forbidden}"));
                }
            }
        }
    }
    (pure_files, problems)
}

#[cfg(test)]
#[test]
fn the_scanners_see_grouped_imports_and_gated_modules() {
    let source = "use crate::core::x;\n// crate::http in a comment\nuse crate::{bridge::a, registry};\nlet _ = crate::triggers::jobs::f();";
    let found: Vec<String> = crate_modules(source).into_iter().collect();
    assert_eq!(found, ["bridge", "core", "registry", "triggers"]);
    let nested = "use crate::{core::{a, b}, http::x};";
    assert_eq!(crate_modules(nested).into_iter().collect::<Vec<_>>(), ["core", "http"], "a nested group hides no module");
    let mod_rs = "pub mod api;\n#[cfg(target_arch = \"wasm32\")]\npub(crate) mod handler;\n";
    assert_eq!(wasm_files(mod_rs).into_iter().collect::<Vec<_>>(), ["handler.rs"]);
}

/// The two layering tests of a crate, as `#[test]` functions: every folder of its `src/`
/// depends only on what `$rules` allows (folder, the top-level modules it may name), and
/// the files of `$pure` (folders) that their `mod.rs` does not gate on wasm32 have no
/// Workers code, with at least `$min_pure` such files found (so a scan that found nothing
/// fails). Invoke it in a `#[cfg(test)]` module of the crate.
#[macro_export]
macro_rules! layering_tests {
    (rules: $rules:expr, pure: $pure:expr, min_pure: $min_pure:expr $(,)?) => {
        #[test]
        fn every_folder_depends_only_on_what_its_mod_rs_allows() {
            let src = ::std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
            let problems = $crate::layering::dependency_problems(&src, $rules);
            assert!(problems.is_empty(), "{}", problems.join("\n"));
        }

        #[test]
        fn the_pure_parts_have_no_workers_code() {
            let src = ::std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
            let (scanned, problems) = $crate::layering::workers_code_in_pure_files(&src, $pure);
            assert!(scanned >= $min_pure, "the scan found only {scanned} pure files");
            assert!(problems.is_empty(), "{}", problems.join("\n"));
        }
    };
}
