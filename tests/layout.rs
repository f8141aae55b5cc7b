//! The layout a newcomer reads stays true: the README's "Layout" table names
//! every folder under `src/` and every file at its top, and every Python
//! subpackage of `onnx/idfcr_train/`; and the size limits we hold ourselves
//! to (no Rust file over 600 lines, at most 8 files at the top of `src/`).

use std::fs;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The README's "## Layout" section.
fn layout_section() -> String {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("\n## Layout")
        .expect("README has a ## Layout section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map(|i| i + 3).unwrap_or(rest.len());
    rest[..end].to_string()
}

#[test]
fn readme_layout_names_every_folder_and_top_level_file() {
    let table = layout_section();
    let mut missing = Vec::new();
    for entry in fs::read_dir(root().join("src")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        let shown = if entry.path().is_dir() {
            format!("src/{name}/")
        } else {
            format!("src/{name}")
        };
        if !table.contains(&format!("`{shown}`")) {
            missing.push(shown);
        }
    }
    for entry in fs::read_dir(root().join("onnx/idfcr_train")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if entry.path().is_dir() && entry.path().join("__init__.py").exists() {
            let shown = format!("onnx/idfcr_train/{name}/");
            if !table.contains(&format!("`{shown}`")) {
                missing.push(shown);
            }
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "README's Layout table does not name {missing:?}"
    );
}

#[test]
fn rust_files_stay_small_and_the_top_of_src_stays_short() {
    fn walk(dir: &Path, out: &mut Vec<(String, usize)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let lines = fs::read_to_string(&path).unwrap().lines().count();
                out.push((path.display().to_string(), lines));
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("src"), &mut files);
    let big: Vec<_> = files.iter().filter(|(_, n)| *n > 600).collect();
    assert!(big.is_empty(), "Rust files over 600 lines: {big:?}");
    let top = fs::read_dir(root().join("src"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_file())
        .count();
    assert!(top <= 8, "{top} files at the top of src/ (at most 8)");
}
