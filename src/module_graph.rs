//! A test of the house rule "no module imports one that imports it back": reads every file
//! under `src/`, collects the `crate::` paths each top-level module names (in its own file and
//! its submodules' files), and fails on any cycle between top-level modules.
//!
//! Unit tests are left out (`tests.rs` files and `#[cfg(test)] mod … { … }` blocks): a test
//! may build its fixture with the settings reader or check the words people read, which is no
//! dependency of the module it tests.
//!
//! Written by hand rather than with a crate: a dependency graph tool (cargo-modules) is a
//! binary to install, not a library a test can call, and the check needs only a small lexer
//! that skips comments and literals and a depth-first search over about twenty modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The files that make no module of the graph: the crate root (a table of contents that names
/// every module), the binary (which sees the library from outside) and this test.
const NOT_MODULES: [&str; 3] = ["lib", "main", "module_graph"];

/// Top-level module → the top-level modules its files name through `crate::`.
pub fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    collect_rust_files(src, &mut files);
    let module_of = |file: &Path| -> Option<String> {
        let relative = file.strip_prefix(src).ok()?;
        let first = relative.components().next()?.as_os_str().to_str()?;
        let name = first.strip_suffix(".rs").unwrap_or(first).to_string();
        (!NOT_MODULES.contains(&name.as_str())).then_some(name)
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|file| module_of(file)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|module| (module.clone(), BTreeSet::new()))
        .collect();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        if file.file_name().is_some_and(|name| name == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("a source file is readable");
        for named in crate_paths(&without_test_modules(&code_only(&text))) {
            if named != module && modules.contains(&named) {
                graph.get_mut(&module).expect("listed").insert(named);
            }
        }
    }
    graph
}

fn collect_rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// The source with comments, string literals and char literals blanked out, so that a
/// `crate::` in a doc comment or a message is not taken for a path.
pub fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < chars.len() {
        let rest = &chars[index..];
        let next = |offset: usize| rest.get(offset).copied();
        if rest.starts_with(&['/', '/']) {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
        } else if rest.starts_with(&['/', '*']) {
            let mut depth = 0;
            while index < chars.len() {
                if chars[index..].starts_with(&['/', '*']) {
                    depth += 1;
                    index += 2;
                } else if chars[index..].starts_with(&['*', '/']) {
                    depth -= 1;
                    index += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    index += 1;
                }
            }
            out.push(' ');
        } else if next(0) == Some('r') && matches!(next(1), Some('#' | '"')) && !ident_before(&out)
        {
            // A raw string: r"…", r#"…"#, with as many hashes to close as to open.
            let hashes = rest[1..].iter().take_while(|c| **c == '#').count();
            if rest.get(1 + hashes) != Some(&'"') {
                out.push('r');
                index += 1;
                continue;
            }
            index += 2 + hashes;
            while index < chars.len() {
                if chars[index] == '"'
                    && chars[index + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|c| **c == '#')
                        .count()
                        == hashes
                {
                    index += 1 + hashes;
                    break;
                }
                index += 1;
            }
            out.push_str("\"\"");
        } else if next(0) == Some('"') {
            index += 1;
            while index < chars.len() && chars[index] != '"' {
                index += if chars[index] == '\\' { 2 } else { 1 };
            }
            index += 1;
            out.push_str("\"\"");
        } else if next(0) == Some('\'') {
            // A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a): only a literal
            // closes with a quote within a few characters.
            let close = if next(1) == Some('\\') {
                rest.iter()
                    .skip(2)
                    .position(|c| *c == '\'')
                    .map(|at| at + 2)
            } else {
                (next(2) == Some('\'')).then_some(2)
            };
            match close {
                Some(close) => {
                    index += close + 1;
                    out.push_str("' '");
                }
                None => {
                    out.push('\'');
                    index += 1;
                }
            }
        } else {
            out.push(chars[index]);
            index += 1;
        }
    }
    out
}

/// The code without its `#[cfg(test)] mod name { … }` blocks (comments and literals already
/// blanked, so braces balance).
pub fn without_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let is_inline_module = after.trim_start().starts_with("mod ")
            && after
                .find('{')
                .is_some_and(|brace| after.find(';').is_none_or(|semicolon| brace < semicolon));
        if !is_inline_module {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        let open = after.find('{').expect("checked");
        let mut depth = 0;
        let mut end = after.len();
        for (index, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + index + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The text ends in part of an identifier (so an `r` next is not a raw string's prefix).
fn ident_before(out: &str) -> bool {
    out.chars()
        .last()
        .is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// The first segment after every `crate::` in `code`, and each first segment of a
/// `crate::{a, b::c}` group.
pub fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let boundary = rest[..at]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        rest = &rest[at + "crate::".len()..];
        if !boundary {
            continue;
        }
        let trimmed = rest.trim_start();
        if let Some(group) = trimmed.strip_prefix('{') {
            named.extend(group_items(group));
        } else {
            let name: String = trimmed
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                named.insert(name);
            }
        }
    }
    named
}

/// The first segment of each item of a `{…}` group (the text after its opening brace).
fn group_items(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    let mut push = |current: &mut String| {
        let name: String = current
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && name != "self" {
            items.push(name);
        }
        current.clear();
    };
    for c in group.chars() {
        match c {
            '{' => {
                depth += 1;
                current.push(c);
            }
            '}' if depth == 0 => break,
            '}' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => push(&mut current),
            _ => current.push(c),
        }
    }
    push(&mut current);
    items
}

/// Every elementary cycle of the graph, each once, starting at its smallest module.
pub fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        let last = path.last().expect("the path starts at `start`").clone();
        for next in graph.get(&last).into_iter().flatten() {
            if next == start {
                found.push(path.clone());
            } else if next.as_str() > start && !path.contains(next) {
                path.push(next.clone());
                walk(graph, start, path, found);
                path.pop();
            }
        }
    }
    let mut found = Vec::new();
    for start in graph.keys() {
        walk(graph, start, &mut vec![start.clone()], &mut found);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_top_level_module_imports_one_that_imports_it_back() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let graph = module_graph(&src);
        assert!(
            graph.contains_key("bot") && graph["bot"].contains("decision"),
            "the graph is read: {graph:?}"
        );
        let found = cycles(&graph);
        let shown: Vec<String> = found
            .iter()
            .map(|cycle| format!("{} -> {}", cycle.join(" -> "), cycle[0]))
            .collect();
        assert!(
            found.is_empty(),
            "{} import cycle(s) between top-level modules of src/:\n{}",
            found.len(),
            shown.join("\n")
        );
    }

    #[test]
    fn the_engine_names_nothing_of_the_backends() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![src.join("decision.rs")];
        collect_rust_files(&src.join("decision"), &mut files);
        for file in files.iter().filter(|file| !file.ends_with("tests.rs")) {
            let text = std::fs::read_to_string(file).expect("a source file is readable");
            let code = without_test_modules(&code_only(&text));
            assert!(
                !code.contains("autoscalebot_backends"),
                "{} names autoscalebot_backends: the engine speaks its own types",
                file.display()
            );
        }
        assert!(files.len() > 1, "the engine's files are read: {files:?}");
    }

    #[test]
    fn paths_in_comments_and_literals_are_not_imports_and_groups_are() {
        let code = code_only(concat!(
            "use crate::{alpha::A, beta, gamma::{x, y}};\n",
            "// crate::delta in a comment\n",
            "/* crate::epsilon /* nested */ */\n",
            "let s = \"crate::zeta\"; let r = r#\"crate::eta\"#; let c = '\"';\n",
            "fn f<'a>(x: &'a str) -> crate::theta::T { crate::iota::call() }\n",
            "notcrate::kappa;\n",
        ));
        let named: Vec<String> = crate_paths(&code).into_iter().collect();
        assert_eq!(named, ["alpha", "beta", "gamma", "iota", "theta"]);
    }

    #[test]
    fn inline_test_modules_are_left_out_and_the_code_after_them_is_not() {
        let code = code_only(concat!(
            "use crate::alpha;\n",
            "#[cfg(test)]\nmod tests;\n",
            "#[cfg(test)]\nmod tests {\n    use crate::beta;\n    fn f() { crate::gamma::g(); }\n}\n",
            "fn after() { crate::delta::d(); }\n",
        ));
        let named: Vec<String> = crate_paths(&without_test_modules(&code))
            .into_iter()
            .collect();
        assert_eq!(named, ["alpha", "delta"]);
    }

    #[test]
    fn cycles_are_found_once_each() {
        let graph: BTreeMap<String, BTreeSet<String>> = [
            ("a", vec!["b"]),
            ("b", vec!["a", "c"]),
            ("c", vec!["a"]),
            ("d", vec!["a"]),
        ]
        .into_iter()
        .map(|(from, to)| {
            (
                from.to_string(),
                to.into_iter().map(str::to_string).collect(),
            )
        })
        .collect();
        let found = cycles(&graph);
        assert_eq!(found, vec![vec!["a", "b"], vec!["a", "b", "c"]]);
    }
}
