//! The text layer of a PDF, with lopdf.
//!
//! Text is read in content-stream order, which is reading order for the PDFs that word processors
//! and browsers write. A new baseline starts a new line; a move along the same baseline is a space.

use std::collections::BTreeMap;

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Encoding, LoadOptions, Object, ObjectId};

pub const NO_TEXT_LAYER: &str = "no text layer (a scanned PDF needs OCR)";

/// Largest decompressed stream, and the most content (page and forms) read for one page.
const MAX_STREAM_BYTES: usize = 64 << 20;
/// Form XObjects nested deeper than this are not read.
const MAX_FORM_DEPTH: u32 = 8;
/// Saved graphics states kept (`q` without `Q` in a hostile file).
const MAX_SAVED_STATES: usize = 256;
/// Baselines closer than this (in points) are the same line.
const SAME_LINE: f32 = 2.0;
/// A `TJ` adjustment below this (thousandths of an em) is a word space.
const TJ_SPACE: f32 = -180.0;

/// Extracts every page's text, pages separated by a blank line. `place` names the file in
/// warnings about pages that cannot be read.
pub fn pdf_to_text(bytes: &[u8], place: &str) -> Result<String, String> {
    let options = LoadOptions::with_max_decompressed_size(MAX_STREAM_BYTES);
    let mut doc = Document::load_mem_with_options(bytes, options)
        .map_err(|e| format!("not a readable PDF: {e}"))?;
    // A file encrypted with an empty user password (permissions only) opens without one.
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err("encrypted: it needs a password".to_string());
    }
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err("no pages found (a damaged PDF?)".to_string());
    }
    let mut out = String::new();
    let mut first_error = None;
    for (number, page) in &pages {
        match page_text(&doc, *page) {
            Ok(text) => {
                let text = text.trim();
                if !text.is_empty() {
                    if !out.is_empty() {
                        out.push_str("\n\n");
                    }
                    out.push_str(text);
                }
            }
            Err(e) => {
                tracing::warn!(place, page = number, error = %e, "PDF page skipped");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if out.is_empty() => Err(format!("no text, and a page could not be read: {e}")),
        _ if out.is_empty() => Err(NO_TEXT_LAYER.to_string()),
        _ => Ok(out),
    }
}

fn page_text(doc: &Document, page: ObjectId) -> lopdf::Result<String> {
    let content = doc.get_page_content_with_limit(page, MAX_STREAM_BYTES)?;
    let (own, inherited) = doc.get_page_resources(page)?;
    let dicts = own.into_iter().chain(
        inherited
            .iter()
            .filter_map(|id| doc.get_dictionary(*id).ok()),
    );
    let resources = Resources {
        fonts: encodings(doc, doc.get_page_fonts(page)?),
        xobjects: dicts
            .filter_map(|d| d.get_deref(b"XObject", doc).and_then(Object::as_dict).ok())
            .collect(),
    };
    let mut walk = Walk {
        doc,
        out: String::new(),
        budget: MAX_STREAM_BYTES,
        ctm: IDENTITY,
        saved: Vec::new(),
        line: IDENTITY,
        leading: 0.0,
        moved: false,
        last_y: None,
    };
    walk.run(&content, &resources, 0);
    Ok(walk.out)
}

/// Fonts (by resource name) and XObject dictionaries of a page or a form.
struct Resources<'a> {
    fonts: BTreeMap<Vec<u8>, Encoding<'a>>,
    xobjects: Vec<&'a Dictionary>,
}

impl<'a> Resources<'a> {
    fn of(doc: &'a Document, dict: &'a Dictionary) -> Self {
        let fonts = dict
            .get_deref(b"Font", doc)
            .and_then(Object::as_dict)
            .map(|fonts| {
                fonts
                    .iter()
                    .filter_map(|(name, font)| {
                        let font = doc.dereference(font).ok()?.1.as_dict().ok()?;
                        Some((name.clone(), font))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Resources {
            fonts: encodings(doc, fonts),
            xobjects: dict
                .get_deref(b"XObject", doc)
                .and_then(Object::as_dict)
                .into_iter()
                .collect(),
        }
    }
}

fn encodings<'a>(
    doc: &'a Document,
    fonts: BTreeMap<Vec<u8>, &'a Dictionary>,
) -> BTreeMap<Vec<u8>, Encoding<'a>> {
    fonts
        .into_iter()
        .filter_map(|(name, font)| {
            let encoding = font.get_font_encoding_with_limit(doc, MAX_STREAM_BYTES);
            Some((name, encoding.ok()?))
        })
        .collect()
}

/// `[a b c d e f]`, as PDF writes a matrix.
type Matrix = [f32; 6];
const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

fn mul(m: &Matrix, n: &Matrix) -> Matrix {
    [
        m[0] * n[0] + m[1] * n[2],
        m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2],
        m[2] * n[1] + m[3] * n[3],
        m[4] * n[0] + m[5] * n[2] + n[4],
        m[4] * n[1] + m[5] * n[3] + n[5],
    ]
}

struct Walk<'a> {
    doc: &'a Document,
    out: String,
    /// Content bytes still to read for this page (forms can be drawn many times).
    budget: usize,
    ctm: Matrix,
    saved: Vec<Matrix>,
    /// The text line matrix.
    line: Matrix,
    leading: f32,
    /// The text position moved since the last text shown.
    moved: bool,
    /// Device y of the baseline of the last text shown.
    last_y: Option<f32>,
}

impl<'a> Walk<'a> {
    fn run(&mut self, content: &[u8], resources: &Resources<'a>, depth: u32) {
        self.budget = self.budget.saturating_sub(content.len());
        let mut font = None;
        // Operations before a syntax error are kept.
        for op in Content::decode_iter(content).map_while(Result::ok) {
            let num = |i: usize| {
                op.operands
                    .get(i)
                    .and_then(|o| o.as_float().ok())
                    .unwrap_or(0.0)
            };
            let matrix = || [num(0), num(1), num(2), num(3), num(4), num(5)];
            let name = || op.operands.first().and_then(|o| o.as_name().ok());
            match op.operator.as_str() {
                "q" if self.saved.len() < MAX_SAVED_STATES => self.saved.push(self.ctm),
                "Q" => self.ctm = self.saved.pop().unwrap_or(self.ctm),
                "cm" => self.ctm = mul(&matrix(), &self.ctm),
                "BT" => self.set_line(IDENTITY),
                "Tm" => self.set_line(matrix()),
                "Td" => self.move_line(num(0), num(1)),
                "TD" => {
                    self.leading = -num(1);
                    self.move_line(num(0), num(1));
                }
                "TL" => self.leading = num(0),
                "T*" => self.move_line(0.0, -self.leading),
                "Tf" => font = name().and_then(|n| resources.fonts.get(n)),
                "Tj" | "TJ" => self.show(font, &op.operands),
                "'" | "\"" => {
                    self.move_line(0.0, -self.leading);
                    self.new_line();
                    let text = if op.operator == "'" { 0 } else { 2 };
                    self.show(font, op.operands.get(text..).unwrap_or_default());
                }
                "Do" if depth < MAX_FORM_DEPTH => {
                    if let Some(name) = name() {
                        self.form(name, resources, depth);
                    }
                }
                _ => {}
            }
        }
    }

    /// Draws a form XObject (images and others are skipped).
    fn form(&mut self, name: &[u8], resources: &Resources<'a>, depth: u32) {
        let doc = self.doc;
        let Some(form) = resources
            .xobjects
            .iter()
            .find_map(|x| x.get_deref(name, doc).ok())
            .and_then(|o| o.as_stream().ok())
            .filter(|s| s.dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Form"))
        else {
            return;
        };
        let Ok(content) = form.decompressed_content_with_limit(self.budget) else {
            return;
        };
        let own = form
            .dict
            .get_deref(b"Resources", doc)
            .and_then(Object::as_dict);
        let own = own.ok().map(|dict| Resources::of(doc, dict));
        let saved = self.ctm;
        if let Ok(m) = form.dict.get(b"Matrix").and_then(Object::as_array)
            && let [a, b, c, d, e, f] = m.as_slice()
        {
            let m = [a, b, c, d, e, f].map(|x| x.as_float().unwrap_or(0.0));
            self.ctm = mul(&m, &self.ctm);
        }
        self.run(&content, own.as_ref().unwrap_or(resources), depth + 1);
        self.ctm = saved;
    }

    fn set_line(&mut self, m: Matrix) {
        self.line = m;
        self.moved = true;
    }

    fn move_line(&mut self, tx: f32, ty: f32) {
        self.set_line(mul(&[1.0, 0.0, 0.0, 1.0, tx, ty], &self.line));
    }

    fn new_line(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        self.last_y = None;
    }

    fn space(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with(char::is_whitespace) {
            self.out.push(' ');
        }
    }

    fn show(&mut self, font: Option<&Encoding>, operands: &[Object]) {
        if std::mem::take(&mut self.moved) {
            let y = self.ctm[1] * self.line[4] + self.ctm[3] * self.line[5] + self.ctm[5];
            match self.last_y {
                Some(last) if (last - y).abs() > SAME_LINE => self.new_line(),
                Some(_) => self.space(),
                None => {}
            }
            self.last_y = Some(y);
        }
        for operand in operands {
            match operand {
                Object::String(bytes, _) => self.decode(font, bytes),
                Object::Array(items) => {
                    for item in items {
                        match item {
                            Object::String(bytes, _) => self.decode(font, bytes),
                            n => {
                                if n.as_float().is_ok_and(|n| n < TJ_SPACE) {
                                    self.space();
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn decode(&mut self, font: Option<&Encoding>, bytes: &[u8]) {
        let mut text = String::new();
        match font.map(|f| f.write_to_string(bytes, &mut text)) {
            Some(Ok(())) => {}
            // An unknown font or encoding: keep what reads as ASCII.
            _ => {
                text.clear();
                text.extend(
                    bytes
                        .iter()
                        .map(|&b| b as char)
                        .filter(char::is_ascii_graphic),
                );
            }
        }
        let text = text.chars().filter(|c| !c.is_control() || *c == '\t');
        self.out
            .extend(text.map(|c| if c == '\t' || c == '\u{a0}' { ' ' } else { c }));
    }
}

/// A PDF with one page per entry, each line set in Helvetica 12 pt (for tests and fixtures).
#[doc(hidden)]
pub fn make_pdf(pages: &[&[&str]]) -> Vec<u8> {
    use lopdf::content::Operation;
    use lopdf::{Stream, dictionary};

    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let resources = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font } });
    let kids: Vec<Object> = pages
        .iter()
        .map(|lines| {
            let mut ops = vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
                Operation::new("Td", vec![72.into(), 720.into()]),
            ];
            for (i, line) in lines.iter().enumerate() {
                if i > 0 {
                    ops.push(Operation::new("Td", vec![0.into(), (-14).into()]));
                }
                ops.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
            }
            ops.push(Operation::new("ET", vec![]));
            let content = Content { operations: ops }.encode().unwrap_or_default();
            let content = doc.add_object(Stream::new(dictionary! {}, content));
            doc.add_object(dictionary! {
                "Type" => "Page", "Parent" => pages_id, "Contents" => content,
            })
            .into()
        })
        .collect();
    let pages_dict = dictionary! {
        "Type" => "Pages",
        "Count" => kids.len() as i64,
        "Kids" => kids,
        "Resources" => resources,
        "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
    };
    doc.objects.insert(pages_id, Object::Dictionary(pages_dict));
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    doc.compress();
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = doc.save_to(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use lopdf::{EncryptionState, EncryptionVersion, Permissions, Stream, dictionary};

    use super::*;

    fn encrypted(pdf: &[u8], user_password: &str) -> Vec<u8> {
        let mut doc = Document::load_mem(pdf).unwrap();
        let id = Object::string_literal(b"0123456789abcdef");
        doc.trailer.set("ID", vec![id.clone(), id]);
        let state = EncryptionState::try_from(EncryptionVersion::V2 {
            document: &doc,
            owner_password: "owner",
            user_password,
            key_length: 128,
            permissions: Permissions::all(),
        })
        .unwrap();
        doc.encrypt(&state).unwrap();
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn encrypted_files_open_only_without_a_user_password() {
        let pdf = make_pdf(&[&["Secret plans"]]);
        let locked = pdf_to_text(&encrypted(&pdf, "user"), "locked.pdf").unwrap_err();
        assert!(locked.contains("encrypted"), "{locked}");
        let open = encrypted(&pdf, "");
        assert_eq!(pdf_to_text(&open, "open.pdf").unwrap(), "Secret plans");
    }

    #[test]
    fn pages_come_out_in_order_with_their_lines() {
        let pdf = make_pdf(&[
            &["Hello", "Returns within (30) days \\ no receipt"],
            &["Second page"],
            &["Third", "page"],
        ]);
        assert_eq!(
            pdf_to_text(&pdf, "t.pdf").unwrap(),
            "Hello\nReturns within (30) days \\ no receipt\n\nSecond page\n\nThird\npage"
        );
    }

    #[test]
    fn garbage_and_truncated_files_are_errors() {
        let pdf = make_pdf(&[&["Hello"]]);
        for bytes in [
            &b""[..],
            b"not a pdf at all",
            b"%PDF-1.5\n%\xE2\xE3\xCF\xD3\n1 0 obj\n<< /Type /Catalog",
            &pdf[..pdf.len() / 3],
            &pdf[..20],
        ] {
            let err = pdf_to_text(bytes, "bad.pdf").unwrap_err();
            assert!(!err.is_empty());
        }
        // Bytes flipped in the middle: an error or some text, never a panic.
        let mut flipped = pdf.clone();
        for i in (pdf.len() / 4..pdf.len() / 2).step_by(7) {
            flipped[i] ^= 0x5a;
        }
        let _ = pdf_to_text(&flipped, "flipped.pdf");
    }

    #[test]
    fn pages_without_text_operators_have_no_text_layer() {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let image = doc.add_object(Stream::new(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Image", "Width" => 2, "Height" => 2,
                "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8,
            },
            vec![0, 255, 255, 0],
        ));
        let content = b"q 500 0 0 700 50 50 cm /Im1 Do Q".to_vec();
        let content = doc.add_object(Stream::new(dictionary! {}, content));
        let page = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content,
            "Resources" => dictionary! { "XObject" => dictionary! { "Im1" => image } },
        });
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Count" => 1, "Kids" => vec![page.into()],
                "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
            }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog);
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        assert_eq!(pdf_to_text(&bytes, "scan.pdf").unwrap_err(), NO_TEXT_LAYER);
        // Text operators that show nothing are no text layer either.
        let blank = make_pdf(&[&[], &["   "]]);
        assert_eq!(pdf_to_text(&blank, "blank.pdf").unwrap_err(), NO_TEXT_LAYER);
    }

    #[test]
    fn layout_operators_place_spaces_and_lines() {
        // One line drawn in pieces (Td along the baseline, a TJ word gap, a new BT at the same
        // height), then lines placed by T*, by `cm`, and inside a form XObject.
        let content = b"BT /F1 12 Tf 72 720 Td (Left) Tj 60 0 Td (right) Tj 50 0 Td \
            [(gap)-300(ped) 20 (kern)] TJ ET BT /F1 12 Tf 300 720 Td (same) Tj ET \
            BT /F1 12 Tf 14 TL 72 690 Td (first) Tj T* (second) Tj (third) ' ET \
            q 1 0 0 1 72 600 cm BT /F1 12 Tf 0 0 Td (moved by cm) Tj ET Q \
            /Fm1 Do";
        let mut doc = Document::load_mem(&make_pdf(&[&[]])).unwrap();
        let page = doc.page_iter().next().unwrap();
        let form = doc.add_object(Stream::new(
            dictionary! { "Type" => "XObject", "Subtype" => "Form",
            "BBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
            "Matrix" => vec![1.into(), 0.into(), 0.into(), 1.into(), 0.into(), 500.into()] },
            b"BT /F1 12 Tf 72 0 Td (in a form) Tj ET".to_vec(),
        ));
        let content = doc.add_object(Stream::new(dictionary! {}, content.to_vec()));
        let page = doc
            .get_object_mut(page)
            .and_then(Object::as_dict_mut)
            .unwrap();
        page.set("Contents", content);
        page.set(
            "Resources",
            dictionary! { "XObject" => dictionary! { "Fm1" => form } },
        );
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        assert_eq!(
            pdf_to_text(&bytes, "layout.pdf").unwrap(),
            "Left right gap pedkern same\nfirst\nsecond\nthird\nmoved by cm\nin a form"
        );
    }
}
