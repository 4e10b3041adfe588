//! Content sources: BEIR corpus.jsonl, plain text and Markdown files (a file or a directory).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Error, Result};

/// Longest accepted line of a JSONL file.
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// BEIR `corpus.jsonl`: `{"_id", "title", "text"}` per line.
    BeirJsonl,
    Markdown,
    Text,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "beir" | "jsonl" => Ok(Format::BeirJsonl),
            "markdown" | "md" => Ok(Format::Markdown),
            "text" | "txt" => Ok(Format::Text),
            other => Err(Error::Input(format!(
                "format `{other}` is not one of beir, markdown, text"
            ))),
        }
    }
}

impl Format {
    /// Detects the format from the file name.
    pub fn detect(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            Some(Format::BeirJsonl)
        } else if name.ends_with(".md") || name.ends_with(".markdown") {
            Some(Format::Markdown)
        } else if name.ends_with(".txt") || name.ends_with(".text") {
            Some(Format::Text)
        } else {
            None
        }
    }
}

/// One source document before chunking.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDoc {
    pub id: String,
    pub title: String,
    pub text: String,
    pub url: Option<String>,
    pub format: Format,
    /// Where it came from, for error messages (`corpus.jsonl:12`).
    pub place: String,
    /// Filterable attributes (vendor, price, in_stock, …); the same on every chunk.
    pub attributes: dartmouth_engine::Attributes,
}

/// Streams documents from files, one at a time, so a corpus of any size is read in bounded memory.
pub struct SourceReader {
    files: Vec<(PathBuf, Format, String)>,
    current: Option<JsonlState>,
    next_file: usize,
}

struct JsonlState {
    path: PathBuf,
    reader: BufReader<std::fs::File>,
    line: usize,
}

impl SourceReader {
    /// `paths` are files or directories (walked recursively, sorted, hidden entries skipped).
    /// `format` overrides detection.
    pub fn open(paths: &[PathBuf], format: Option<Format>) -> Result<SourceReader> {
        let mut files = Vec::new();
        for p in paths {
            let meta = std::fs::metadata(p).map_err(Error::io(p))?;
            if meta.is_dir() {
                let mut found = Vec::new();
                walk(p, &mut found)?;
                found.sort();
                for f in found {
                    if let Some(fmt) = format.or_else(|| Format::detect(&f)) {
                        let rel = f
                            .strip_prefix(p)
                            .unwrap_or(&f)
                            .to_string_lossy()
                            .replace('\\', "/");
                        files.push((f, fmt, rel));
                    }
                }
            } else {
                let fmt = format.or_else(|| Format::detect(p)).ok_or_else(|| {
                    Error::Input(format!(
                        "{}: cannot tell the format from the name; pass --format beir|markdown|text",
                        p.display()
                    ))
                })?;
                let id = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                files.push((p.clone(), fmt, id));
            }
        }
        if files.is_empty() {
            return Err(Error::Input(format!(
                "no indexable files (.jsonl, .md, .txt) under {}",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(SourceReader {
            files,
            current: None,
            next_file: 0,
        })
    }

    /// Total bytes of the input files, for progress reporting.
    pub fn total_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|(p, _, _)| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    fn next_jsonl(state: &mut JsonlState) -> Option<Result<SourceDoc>> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            state.line += 1;
            let place = format!("{}:{}", state.path.display(), state.line);
            let n = match (&mut state.reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
            {
                Ok(n) => n,
                Err(e) => return Some(Err(Error::io(&state.path)(e))),
            };
            if n == 0 {
                return None;
            }
            if buf.len() > MAX_LINE_BYTES && !buf.ends_with(b"\n") {
                // Skip the rest of the line so the next record keeps its line number.
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    match (&mut state.reader)
                        .take(1 << 20)
                        .read_until(b'\n', &mut rest)
                    {
                        Ok(0) => break,
                        Ok(_) if rest.ends_with(b"\n") => break,
                        Ok(_) => {}
                        Err(e) => return Some(Err(Error::io(&state.path)(e))),
                    }
                }
                return Some(Err(Error::bad(
                    place,
                    format!("line is longer than {} MiB", MAX_LINE_BYTES / (1024 * 1024)),
                )));
            }
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t.trim(),
                Err(e) => {
                    return Some(Err(Error::bad(
                        place,
                        format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()),
                    )));
                }
            };
            if text.is_empty() {
                continue;
            }
            return Some(parse_beir_line(text, &place));
        }
    }
}

fn parse_beir_line(text: &str, place: &str) -> Result<SourceDoc> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::bad(place, format!("malformed JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| Error::bad(place, "expected a JSON object"))?;
    let id = match obj.get("_id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(Error::bad(place, "field `_id` must be a non-empty string")),
        None => return Err(Error::bad(place, "missing field `_id`")),
    };
    let field = |name: &str| -> Result<String> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(Error::bad(
                place,
                format!("field `{name}` must be a string"),
            )),
        }
    };
    let title = field("title")?;
    let text = field("text")?;
    let url = match obj.get("url") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    Ok(SourceDoc {
        attributes: Default::default(),
        id,
        title,
        text,
        url,
        format: Format::Text,
        place: place.to_string(),
    })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let entry = entry.map_err(Error::io(dir))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(Error::io(&path))?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

fn read_document_file(path: &Path, format: Format, id: &str) -> Result<SourceDoc> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    let place = path.display().to_string();
    let text = String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
        Error::bad(format!("{place}:{line}"), "invalid UTF-8")
    })?;
    if text.trim().is_empty() {
        return Err(Error::bad(place, "the file is empty"));
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().replace(['-', '_'], " "))
        .unwrap_or_default();
    let title = match format {
        Format::Markdown => text
            .lines()
            .find_map(|l| l.strip_prefix("# "))
            .map(|t| t.trim().to_string())
            .unwrap_or(stem),
        _ => stem,
    };
    Ok(SourceDoc {
        attributes: Default::default(),
        id: id.to_string(),
        title,
        text,
        url: None,
        format,
        place,
    })
}

impl Iterator for SourceReader {
    type Item = Result<SourceDoc>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(state) = &mut self.current {
                match Self::next_jsonl(state) {
                    Some(item) => return Some(item),
                    None => self.current = None,
                }
            }
            let (path, format, id) = self.files.get(self.next_file)?.clone();
            self.next_file += 1;
            match format {
                Format::BeirJsonl => match std::fs::File::open(&path) {
                    Ok(f) => {
                        self.current = Some(JsonlState {
                            path,
                            reader: BufReader::with_capacity(1 << 20, f),
                            line: 0,
                        })
                    }
                    Err(e) => return Some(Err(Error::io(&path)(e))),
                },
                _ => return Some(read_document_file(&path, format, &id)),
            }
        }
    }
}

/// A BEIR query: `{"_id", "text"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct BeirQuery {
    pub id: String,
    pub text: String,
}

/// Reads a BEIR queries.jsonl; errors name the file and line; an empty file is an error.
pub fn read_beir_queries(path: &Path) -> Result<Vec<BeirQuery>> {
    let file = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let place = format!("{}:{}", path.display(), i + 1);
        let line = line.map_err(Error::io(path))?;
        let text = std::str::from_utf8(&line).map_err(|_| Error::bad(&place, "invalid UTF-8"))?;
        if text.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::bad(&place, format!("malformed JSON: {e}")))?;
        let id = match &v["_id"] {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(Error::bad(&place, "missing or empty `_id`")),
        };
        let q = v["text"]
            .as_str()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| Error::bad(&place, "missing or empty `text`"))?;
        if !seen.insert(id.clone()) {
            return Err(Error::bad(&place, format!("duplicate query id `{id}`")));
        }
        out.push(BeirQuery {
            id,
            text: q.to_string(),
        });
    }
    if out.is_empty() {
        return Err(Error::Input(format!("{}: no queries", path.display())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    fn errors(path: &Path) -> Vec<String> {
        SourceReader::open(&[path.to_path_buf()], None)
            .unwrap()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn beir_lines_and_their_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let p = write(
            tmp.path(),
            "c.jsonl",
            b"{\"_id\":\"1\",\"title\":\"T\",\"text\":\"body\"}\n\n{\"title\":\"no id\"}\n{bad json\n{\"_id\":\"3\",\"text\":\"\xff\"}\n",
        );
        let docs: Vec<_> = SourceReader::open(std::slice::from_ref(&p), None)
            .unwrap()
            .collect();
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[0].as_ref().unwrap().id, "1");
        let errs = errors(&p);
        assert!(
            errs[0].ends_with("c.jsonl:3: missing field `_id`"),
            "{errs:?}"
        );
        assert!(errs[1].contains("c.jsonl:4: malformed JSON"), "{errs:?}");
        assert!(errs[2].contains("c.jsonl:5: invalid UTF-8"), "{errs:?}");
    }

    #[test]
    fn a_huge_line_is_refused_with_its_number() {
        let tmp = tempfile::tempdir().unwrap();
        let mut body = b"{\"_id\":\"1\",\"text\":\"ok\"}\n{\"_id\":\"2\",\"text\":\"".to_vec();
        body.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
        body.extend(b"\"}\n");
        let p = write(tmp.path(), "big.jsonl", &body);
        let errs = errors(&p);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].contains("big.jsonl:2: line is longer than 8 MiB"),
            "{errs:?}"
        );
    }

    #[test]
    fn directories_are_walked_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        write(tmp.path(), "b.md", b"# Bee\n\nbuzz");
        write(&tmp.path().join("sub"), "a.txt", b"plain text");
        write(tmp.path(), "skip.bin", b"\x00");
        write(tmp.path(), ".hidden.md", b"# no");
        let docs: Vec<SourceDoc> = SourceReader::open(&[tmp.path().to_path_buf()], None)
            .unwrap()
            .map(|d| d.unwrap())
            .collect();
        let ids: Vec<_> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, vec!["b.md", "sub/a.txt"]);
        assert_eq!(docs[0].title, "Bee");
        assert_eq!(docs[1].title, "a");
    }

    #[test]
    fn queries_file_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let empty = write(tmp.path(), "q0.jsonl", b"\n");
        assert!(
            read_beir_queries(&empty)
                .unwrap_err()
                .to_string()
                .contains("no queries")
        );
        let dup = write(
            tmp.path(),
            "q1.jsonl",
            b"{\"_id\":\"1\",\"text\":\"a\"}\n{\"_id\":\"1\",\"text\":\"b\"}\n",
        );
        assert!(
            read_beir_queries(&dup)
                .unwrap_err()
                .to_string()
                .contains("q1.jsonl:2: duplicate")
        );
    }
}
