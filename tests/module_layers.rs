//! The modules of `src/` depend downward only: the error model uses nothing of the crate, the
//! rendering modules use the error model, the layers use both, and nothing uses a module
//! above it. There is no import cycle between top-level modules.
//!
//! The test reads the sources: every `crate::…` path and every `super::…` path that climbs to
//! the crate root, in `use` items and in code alike, names a top-level module (directly, or
//! through one of `lib.rs`'s re-exports). Comments, string literals and `#[cfg(test)]` items
//! (unit tests may use any module to exercise theirs) are left out.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The allowed order, bottom first. A module may use modules of its own layer (without a cycle)
/// or below, never above. The first layer uses nothing of the crate at all. A top-level module
/// not listed here (an integration, the assembled contract) sits above every layer: it may use
/// anything, and no listed module may use it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation (uses nothing of the crate)",
        &["error", "macros", "media", "path_prefix"],
    ),
    ("rendering", &["body", "grpc", "dialect", "bulk"]),
    (
        "layers",
        &["auth", "batch_limit", "catch_panic", "normalize"],
    ),
    ("assembly", &["contract", "builder"]),
];

/// Where a module uses another: `file:line`.
type Uses = BTreeMap<String, BTreeMap<String, Vec<String>>>;

#[test]
fn modules_depend_downward_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let uses = scan(&src).unwrap_or_else(|error| panic!("{error}"));

    let mut problems = Vec::new();
    for (_, modules) in LAYERS {
        for module in *modules {
            if !uses.contains_key(*module) {
                problems.push(format!(
                    "`{module}` is listed in LAYERS but there is no src/{module}.rs or \
                     src/{module}/: update LAYERS"
                ));
            }
        }
    }
    problems.extend(layer_violations(&uses));
    problems.extend(cycles(&uses));
    assert!(
        problems.is_empty(),
        "the module graph of src/ breaks its layers:\n  {}",
        problems.join("\n  ")
    );

    // The scan sees real uses, so the checks above are not passing on an empty graph.
    for (module, used) in [
        ("dialect", "error"),
        ("dialect", "grpc"),
        ("auth", "dialect"),
    ] {
        assert!(
            uses[module].contains_key(used),
            "the scan no longer sees `{module}` use `{used}`: {:?}",
            uses[module]
        );
    }
}

#[test]
fn the_error_model_uses_nothing_of_the_crate() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let uses = scan(&src).unwrap();
    let error = &uses["error"];
    assert!(
        error.keys().all(|used| used == "error"),
        "src/error uses {error:?}"
    );
}

#[test]
fn the_scanner_reads_paths_not_comments_or_strings() {
    let text = r##"
        use crate::{body::ErrorBody, error::{self, ApiError}};
        use super::super::grpc;
        // use crate::normalize;
        /* crate::batch_limit /* nested */ crate::catch_panic */
        const TEXT: &str = "crate::builder";
        const RAW: &str = r#"crate::builder "quoted""#;
        fn f<'a>(c: char) -> &'a str { let _ = 'x'; let _ = '\''; crate::dialect::render() }
        pub(crate) fn g() { $crate::auth::x(); }
        mod inner { fn h() { super::super::super::ApiError::new(); } }
        #[cfg(test)]
        mod tests { use crate::normalize; }
        #[cfg(test)]
        use crate::normalize::Thing;
    "##;
    let modules: BTreeSet<String> = ["body", "error", "grpc", "dialect", "normalize"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let reexports = BTreeMap::from([("ApiError".to_owned(), "error".to_owned())]);
    let mut found = BTreeSet::new();
    let (code, test_mods) = strip_test_items(&clean(text));
    assert!(test_mods.is_empty());
    for (name, _) in references(&code, &["auth".to_owned(), "x".to_owned()]) {
        found.insert(resolve(&name, &modules, &reexports).unwrap());
    }
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["body", "dialect", "error", "grpc"]
    );

    // A cycle is reported, with where each edge comes from.
    let mut uses = Uses::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a")] {
        uses.entry(from.to_owned())
            .or_default()
            .insert(to.to_owned(), vec![format!("src/{from}.rs:1")]);
    }
    assert_eq!(
        cycles(&uses),
        ["import cycle: a → b → c → a (src/a.rs:1, src/b.rs:1, src/c.rs:1)"]
    );
}

/// Every use of a module above the user's layer, and any use at all from the foundation.
fn layer_violations(uses: &Uses) -> Vec<String> {
    let layer = |module: &str| {
        LAYERS
            .iter()
            .position(|(_, modules)| modules.contains(&module))
            .unwrap_or(LAYERS.len())
    };
    let name = |index: usize| LAYERS.get(index).map_or("integrations", |(name, _)| *name);
    let mut problems = Vec::new();
    for (module, used) in uses {
        for (target, places) in used {
            if target == module {
                continue;
            }
            let (from, to) = (layer(module), layer(target));
            if from == 0 || to > from {
                problems.push(format!(
                    "{}: `{module}` ({}) uses `crate::{target}` ({}), which is {}",
                    places.join(", "),
                    name(from),
                    name(to),
                    if from == 0 {
                        "not allowed in the foundation"
                    } else {
                        "above it"
                    },
                ));
            }
        }
    }
    problems
}

/// Every cycle between top-level modules, each reported once.
fn cycles(uses: &Uses) -> Vec<String> {
    fn visit(
        module: &str,
        uses: &Uses,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut BTreeSet<String>,
    ) {
        if let Some(start) = path.iter().position(|seen| seen == module) {
            let mut cycle: Vec<String> = path[start..].to_vec();
            // Start the cycle at its smallest module, so each is reported once.
            let smallest = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap();
            cycle.rotate_left(smallest);
            let places: Vec<String> = (0..cycle.len())
                .map(|i| uses[&cycle[i]][&cycle[(i + 1) % cycle.len()]][0].clone())
                .collect();
            cycle.push(cycle[0].clone());
            found.insert(format!(
                "import cycle: {} ({})",
                cycle.join(" → "),
                places.join(", ")
            ));
            return;
        }
        if done.contains(module) {
            return;
        }
        path.push(module.to_owned());
        for target in uses.get(module).into_iter().flat_map(BTreeMap::keys) {
            if target != module {
                visit(target, uses, path, done, found);
            }
        }
        path.pop();
        done.insert(module.to_owned());
    }
    let mut found = BTreeSet::new();
    for module in uses.keys() {
        visit(
            module,
            uses,
            &mut Vec::new(),
            &mut BTreeSet::new(),
            &mut found,
        );
    }
    found.into_iter().collect()
}

/// The top-level modules each top-level module of `src` uses, with where.
fn scan(src: &Path) -> Result<Uses, String> {
    let mut files = Vec::new();
    collect_files(src, &mut files);
    files.sort();

    let lib = fs::read_to_string(src.join("lib.rs")).map_err(|e| e.to_string())?;
    let (lib_code, _) = strip_test_items(&clean(&lib));
    let mut modules = BTreeSet::new();
    for file in &files {
        if let Some(module) = top_level(src, file) {
            modules.insert(module);
        }
    }
    // `lib.rs`'s re-exports: `crate::ApiError` is a use of `error`.
    let mut reexports = BTreeMap::new();
    for path in use_paths(&lib_code) {
        if let (Some(first), Some(last)) = (path.first(), path.last()) {
            if modules.contains(first) {
                reexports.insert(last.clone(), first.clone());
            }
        }
    }
    for item in root_items(&lib_code) {
        reexports.insert(item, String::new());
    }

    let mut code = BTreeMap::new();
    // `#[cfg(test)] mod tests;` names a file (and its folder) to leave out.
    let mut skipped: Vec<PathBuf> = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let (text, test_mods) = strip_test_items(&clean(&text));
        let dir = match file.file_name().and_then(|n| n.to_str()) {
            Some("mod.rs") => file.parent().unwrap().to_path_buf(),
            _ => file.with_extension(""),
        };
        for name in test_mods {
            skipped.push(dir.join(format!("{name}.rs")));
            skipped.push(dir.join(&name));
        }
        code.insert(file.clone(), text);
    }

    let mut uses = Uses::new();
    for file in &files {
        let Some(module) = top_level(src, file) else {
            continue;
        };
        uses.entry(module.clone()).or_default();
        if skipped.iter().any(|test| file.starts_with(test)) {
            continue;
        }
        let code = &code[file];
        let relative = file.strip_prefix(src.parent().unwrap()).unwrap();
        for (name, line) in references(code, &module_path(src, file)) {
            let target = resolve(&name, &modules, &reexports)
                .map_err(|e| format!("{}:{line}: {e}", relative.display()))?;
            if target.is_empty() {
                continue;
            }
            uses.entry(module.clone())
                .or_default()
                .entry(target)
                .or_default()
                .push(format!("{}:{line}", relative.display()));
        }
    }
    Ok(uses)
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// `src/auth/items.rs` → `auth`; `lib.rs` → none.
fn top_level(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).ok()?.components().next()?;
    let first = first.as_os_str().to_str()?;
    (first != "lib.rs").then(|| first.trim_end_matches(".rs").to_owned())
}

/// `src/auth/items.rs` → `[auth, items]`; `src/auth/mod.rs` → `[auth]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut path: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_str().unwrap().to_owned())
        .collect();
    if path
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        path.pop();
    }
    path
}

/// A name at the crate root → the top-level module it belongs to (`""`: an item of `lib.rs`).
fn resolve(
    name: &str,
    modules: &BTreeSet<String>,
    reexports: &BTreeMap<String, String>,
) -> Result<String, String> {
    if modules.contains(name) {
        return Ok(name.to_owned());
    }
    reexports.get(name).cloned().ok_or_else(|| {
        format!("`crate::{name}` is neither a module of src/ nor a re-export of lib.rs")
    })
}

/// Whether the `r` at `i` starts a raw string (`r"…"`, `br#"…"#`), not the end of a word.
fn starts_word(chars: &[char], i: usize) -> bool {
    let ident = |c: &char| c.is_alphanumeric() || *c == '_';
    match i.checked_sub(1).map(|p| &chars[p]) {
        None => true,
        Some('b') => i < 2 || !ident(&chars[i - 2]),
        Some(prev) => !ident(prev),
    }
}

/// The source with comments removed and literals emptied; lines are kept.
fn clean(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // Keeps the line count of skipped text.
    let skip = |out: &mut String, from: usize, to: usize| {
        out.extend(chars[from..to].iter().filter(|&&c| c == '\n'));
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |p| i + p);
            i = end;
        } else if c == '/' && next == Some('*') {
            let (mut depth, mut j) = (1, i + 2);
            while j < chars.len() && depth > 0 {
                if chars[j] == '/' && chars.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 1;
                } else if chars[j] == '*' && chars.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 1;
                }
                j += 1;
            }
            skip(&mut out, i, j);
            i = j;
        } else if c == 'r' && matches!(next, Some('"' | '#')) && starts_word(&chars, i) {
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let closing: String = std::iter::once('"')
                .chain("#".repeat(hashes).chars())
                .collect();
            let body_start = i + 2 + hashes;
            let rest: String = chars[body_start..].iter().collect();
            let end = rest.find(&closing).map_or(chars.len(), |p| {
                body_start + rest[..p].chars().count() + closing.chars().count()
            });
            out.push_str("\"\"");
            skip(&mut out, i, end);
            i = end;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            skip(&mut out, i, j.min(chars.len()));
            i = j + 1;
        } else if c == '\'' && next == Some('\\') {
            // Past the backslash and the escaped character (`'\''`, `'\u{1F}'`).
            let mut j = i + 3;
            while j < chars.len() && chars[j] != '\'' {
                j += 1;
            }
            out.push_str("' '");
            i = j + 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            out.push_str("' '");
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Punct(char),
}

/// Tokens with their line numbers; `::` is two `:` tokens.
fn tokens(code: &str) -> Vec<(Token, usize)> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let mut word = String::from(c);
            while let Some(&next) = chars.peek() {
                if !(next.is_alphanumeric() || next == '_') {
                    break;
                }
                word.push(next);
                chars.next();
            }
            out.push((Token::Ident(word), line));
        } else if !c.is_whitespace() {
            out.push((Token::Punct(c), line));
        }
    }
    out
}

/// Removes `#[cfg(test)]` items; returns the code left and the `mod name;` files it named.
fn strip_test_items(code: &str) -> (String, Vec<String>) {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::new();
    let mut test_mods = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let item = &rest[at + MARK.len()..];
        let mut depth = 0_i32;
        let mut end = item.len();
        for (index, c) in item.char_indices() {
            match c {
                '{' | '(' | '[' => depth += 1,
                '}' | ')' | ']' => {
                    depth -= 1;
                    if depth == 0 && c == '}' {
                        end = index + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = index + 1;
                    break;
                }
                _ => {}
            }
        }
        let skipped = &item[..end];
        let words: Vec<&str> = skipped
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ';'))
            .filter(|w| !w.is_empty())
            .collect();
        if let Some(position) = words.iter().position(|w| *w == "mod") {
            if let Some(name) = words.get(position + 1).and_then(|w| w.strip_suffix(';')) {
                test_mods.push(name.to_owned());
            }
        }
        out.extend(skipped.chars().filter(|&c| c == '\n'));
        rest = &item[end..];
    }
    out.push_str(rest);
    (out, test_mods)
}

/// The crate-root names the code refers to (`crate::x`, or `super::…` climbing to the root),
/// with their lines. `module` is the file's module path; inline `mod x { … }` deepen it.
fn references(code: &str, module: &[String]) -> Vec<(String, usize)> {
    let tokens = tokens(code);
    let ident = |i: usize| match tokens.get(i) {
        Some((Token::Ident(word), _)) => Some(word.as_str()),
        _ => None,
    };
    let punct = |i: usize, c: char| matches!(tokens.get(i), Some((Token::Punct(p), _)) if *p == c);
    let path_sep = |i: usize| punct(i, ':') && punct(i + 1, ':');

    let mut found = Vec::new();
    // Inline modules: (name, brace depth inside them).
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let line = tokens[i].1;
        if punct(i, '{') {
            depth += 1;
        } else if punct(i, '}') {
            if inline.last() == Some(&depth) {
                inline.pop();
            }
            depth -= 1;
        } else if ident(i) == Some("mod") && ident(i + 1).is_some() && punct(i + 2, '{') {
            inline.push(depth + 1);
        }
        let starts_path = i == 0 || !(path_sep(i.saturating_sub(2)) || punct(i - 1, '$'));
        let at_root = match ident(i) {
            Some("crate") if starts_path && path_sep(i + 1) => Some(i + 3),
            Some("super") if starts_path => {
                let mut level = module.len() + inline.len();
                let mut j = i;
                while ident(j) == Some("super") && path_sep(j + 1) {
                    level = level.saturating_sub(1);
                    j += 3;
                }
                (level == 0 && j > i).then_some(j)
            }
            _ => None,
        };
        if let Some(start) = at_root {
            let mut j = start;
            for path in use_tree(&tokens, &mut j) {
                if let Some(first) = path.into_iter().next() {
                    if first != "self" {
                        found.push((first, line));
                    }
                }
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
    found
}

/// The paths of every `use crate::…` (and `pub use`) item.
fn use_paths(code: &str) -> Vec<Vec<String>> {
    let tokens = tokens(code);
    let mut out = Vec::new();
    for i in 0..tokens.len() {
        if tokens[i].0 == Token::Ident("use".to_owned())
            && tokens.get(i + 1).map(|t| &t.0) == Some(&Token::Ident("crate".to_owned()))
        {
            let mut j = i + 4;
            out.extend(use_tree(&tokens, &mut j));
        }
    }
    out
}

/// The items `lib.rs` defines itself (`crate::Name` then belongs to no module).
fn root_items(code: &str) -> Vec<String> {
    let tokens = tokens(code);
    let kinds = [
        "fn", "struct", "enum", "type", "trait", "const", "static", "union",
    ];
    tokens
        .windows(2)
        .filter_map(|pair| match (&pair[0].0, &pair[1].0) {
            (Token::Ident(kind), Token::Ident(name)) if kinds.contains(&kind.as_str()) => {
                Some(name.clone())
            }
            _ => None,
        })
        .collect()
}

/// A use tree (or an expression path) from `tokens[*i]`: `a::b`, `a::{b, c::{d}}`, `a as b`.
fn use_tree(tokens: &[(Token, usize)], i: &mut usize) -> Vec<Vec<String>> {
    let punct = |i: usize, c: char| matches!(tokens.get(i), Some((Token::Punct(p), _)) if *p == c);
    match tokens.get(*i) {
        Some((Token::Punct('{'), _)) => {
            *i += 1;
            let mut paths = Vec::new();
            while *i < tokens.len() && !punct(*i, '}') {
                paths.extend(use_tree(tokens, i));
                if punct(*i, ',') {
                    *i += 1;
                } else if !punct(*i, '}') {
                    // Not a use tree after all; stop at what was understood.
                    break;
                }
            }
            *i += 1;
            paths
        }
        Some((Token::Ident(segment), _)) => {
            let segment = segment.clone();
            *i += 1;
            if punct(*i, ':') && punct(*i + 1, ':') {
                *i += 2;
                let mut paths = use_tree(tokens, i);
                if paths.is_empty() {
                    paths.push(Vec::new());
                }
                for path in &mut paths {
                    path.insert(0, segment.clone());
                }
                paths
            } else {
                if matches!(tokens.get(*i), Some((Token::Ident(word), _)) if word == "as") {
                    *i += 2;
                }
                vec![vec![segment]]
            }
        }
        // `*` or anything else ends the path here.
        Some(_) => {
            *i += 1;
            vec![Vec::new()]
        }
        None => Vec::new(),
    }
}
