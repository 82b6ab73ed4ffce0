//! Every relative link in the project's Markdown files leads somewhere: the file exists and, when the link names a
//! section (`page.md#section`), the page has a heading with that anchor (GitHub's rule: lower case, punctuation
//! dropped, spaces as hyphens).

use std::path::{Path, PathBuf};

use regex::Regex;

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                markdown_files(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// The text outside fenced code blocks and inline code.
fn prose(text: &str) -> String {
    let mut fenced = false;
    let code = Regex::new("`[^`]*`").unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(&code.replace_all(line, ""));
            out.push('\n');
        }
    }
    out
}

fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = vec![];
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

fn broken_links(root: &Path) -> Vec<String> {
    let mut files = vec![];
    markdown_files(root, &mut files);
    let link = Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut broken = vec![];
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for cap in link.captures_iter(&prose(&text)) {
            let target = &cap[1];
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, section) = target.split_once('#').unwrap_or((target, ""));
            let dest = if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
            let shown = file.strip_prefix(root).unwrap().display();
            if !dest.exists() {
                broken.push(format!("{shown}: {target}: no such file"));
            } else if !section.is_empty() && dest.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&dest).unwrap();
                if !anchors(&text).iter().any(|a| a == section) {
                    broken.push(format!("{shown}: {target}: no heading with that anchor"));
                }
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_in_the_docs_leads_somewhere() {
    let broken = broken_links(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_check_finds_a_missing_page_and_a_missing_section() {
    let dir = std::env::temp_dir().join(format!("podtask-links-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.md"), "# A page\n## The real node: kubelet (`hack/x/`)\n").unwrap();
    std::fs::write(
        dir.join("b.md"),
        "[ok](a.md#the-real-node-kubelet-hackx) [gone](c.md) [no section](a.md#nowhere) `[code](d.md)`\n\
         ```\n[fenced](e.md)\n```\n[web](https://example.com/x.md)\n",
    )
    .unwrap();
    let mut broken = broken_links(&dir);
    broken.sort();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(broken, ["b.md: a.md#nowhere: no heading with that anchor", "b.md: c.md: no such file"]);
}
