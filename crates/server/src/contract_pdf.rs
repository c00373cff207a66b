//! Contract PDFs (issue #6): A4 pages laid out here — line breaking for Chinese text
//! (no closing punctuation at a line's start, Latin words kept whole), tables with
//! wrapped cells and a repeated header, page footers — and drawn with `krilla`, which
//! embeds a subset of the CJK OpenType font (CFF outlines included) with a ToUnicode map,
//! so the text can be searched and extracted.
//!
//! The font is found on the system (Debian's `fonts-noto-cjk`, WenQuanYi, Droid
//! fallback…) or configured by path (`contract_font_path`); in a collection (`.ttc`) the
//! Simplified Chinese face is chosen. It is read once per process.

use krilla::geom::{PathBuilder, Point};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, GlyphId, KrillaGlyph};
use krilla::Document;
use skrifa::instance::{LocationRef, Size};
use skrifa::{FontRef, MetadataProvider};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Where CJK fonts are usually installed on Linux, in order of preference.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/wqy-microhei/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
];

/// Characters a usable face must draw.
const PROBE: &str = "借款合同综合融资成本明示表壹贰叁￥";

/// A CJK font face, loaded once.
pub struct CjkFont {
    pub path: PathBuf,
    pub index: u32,
    data: Arc<Vec<u8>>,
    font: Font,
}

impl std::fmt::Debug for CjkFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CjkFont")
            .field("path", &self.path)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// The face of a font file (a collection holds several) that draws Chinese, preferring
/// the Simplified Chinese one.
fn pick_face(data: &[u8]) -> Option<u32> {
    let mut first = None;
    for index in 0..64_u32 {
        let Ok(f) = FontRef::from_index(data, index) else {
            break;
        };
        let cmap = f.charmap();
        if !PROBE.chars().all(|c| cmap.map(c).is_some()) {
            continue;
        }
        let family = f
            .localized_strings(skrifa::string::StringId::FAMILY_NAME)
            .english_or_first()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let words: Vec<&str> = family.split_whitespace().collect();
        if words.contains(&"SC") || family.contains("Simplified") || family.contains("GB") {
            return Some(index);
        }
        first.get_or_insert(index);
    }
    first
}

fn load(path: &Path) -> Result<CjkFont, String> {
    let data = std::fs::read(path)
        .map_err(|e| format!("cannot read the contract font {}: {e}", path.display()))?;
    let index = pick_face(&data).ok_or_else(|| {
        format!(
            "{} has no face that draws Chinese text (checked: {PROBE})",
            path.display()
        )
    })?;
    let data = Arc::new(data);
    let font = Font::new(data.clone().into(), index)
        .ok_or_else(|| format!("{} face {index} cannot be read", path.display()))?;
    Ok(CjkFont {
        path: path.to_owned(),
        index,
        data,
        font,
    })
}

/// The contract font: the configured file, or the first CJK font found on the system.
/// Loaded once per path.
pub fn font(configured: Option<&Path>) -> Result<Arc<CjkFont>, String> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<CjkFont>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let path = match configured {
        Some(p) => p.to_owned(),
        None => FONT_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "no CJK font was found for contract PDFs: install Debian's fonts-noto-cjk (scripts/install-deps.sh) or set `contract_font_path` to a .ttf/.otf/.ttc that has Chinese glyphs (looked in: {})",
                    FONT_CANDIDATES.join(", ")
                )
            })?,
    };
    if let Some(f) = cache.lock().ok().and_then(|c| c.get(&path).cloned()) {
        return Ok(f);
    }
    let loaded = Arc::new(load(&path)?);
    if let Ok(mut c) = cache.lock() {
        c.insert(path, loaded.clone());
    }
    Ok(loaded)
}

// ---------------------------------------------------------------------------------------
// The document model

/// A table: column widths as fractions of the text width, a header row, body rows, and
/// which columns are right-aligned (figures).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub widths: Vec<f32>,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub right: Vec<bool>,
    /// A bold last row (totals).
    pub caption: Option<String>,
}

/// One party's signature block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLine {
    /// `借款人（甲方）`
    pub role: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PdfBlock {
    Title(String),
    Heading(String),
    Paragraph(String),
    Table(Table),
    Signatures(Vec<SignatureLine>),
}

/// What to print.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub title: String,
    /// Left part of every page's footer (the contract number).
    pub footer: String,
    pub blocks: Vec<PdfBlock>,
}

// ---------------------------------------------------------------------------------------
// Layout

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN_X: f32 = 62.0;
const MARGIN_TOP: f32 = 64.0;
const MARGIN_BOTTOM: f32 = 72.0;
const BODY: f32 = 10.5;
const TABLE_TEXT: f32 = 8.5;
const CELL_PAD: f32 = 3.0;

enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        text: String,
    },
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        width: f32,
    },
}

struct Measure<'a> {
    cmap: skrifa::charmap::Charmap<'a>,
    metrics: skrifa::metrics::GlyphMetrics<'a>,
    upem: f32,
}

impl<'a> Measure<'a> {
    fn new(f: &'a CjkFont) -> Result<Self, String> {
        let r = FontRef::from_index(f.data.as_slice(), f.index).map_err(|e| e.to_string())?;
        let upem = {
            use skrifa::raw::TableProvider;
            r.head()
                .map(|h| f32::from(h.units_per_em()))
                .unwrap_or(1000.0)
        };
        Ok(Measure {
            cmap: r.charmap(),
            metrics: r.glyph_metrics(Size::unscaled(), LocationRef::default()),
            upem,
        })
    }

    fn char_width(&self, c: char, size: f32) -> f32 {
        let gid = self.cmap.map(c).unwrap_or_default();
        self.metrics.advance_width(gid).unwrap_or(self.upem) / self.upem * size
    }

    fn width(&self, s: &str, size: f32) -> f32 {
        s.chars().map(|c| self.char_width(c, size)).sum()
    }

    /// `text` as positioned glyphs, one per character, advanced exactly as
    /// [`width`](Self::width) measured them. Chinese and the Latin of a contract need no
    /// shaping; krilla's `draw_text` would parse the font's layout tables (GSUB/GPOS,
    /// large in a CJK font) anew for every line: two thirds of a contract's rendering
    /// time with Noto Sans CJK.
    fn glyphs(&self, text: &str) -> Vec<KrillaGlyph> {
        text.char_indices()
            .map(|(i, c)| {
                let gid = self.cmap.map(c).unwrap_or_default();
                let advance = self.metrics.advance_width(gid).unwrap_or(self.upem) / self.upem;
                KrillaGlyph::new(
                    GlyphId::new(gid.to_u32()),
                    advance,
                    0.0,
                    0.0,
                    0.0,
                    i..i + c.len_utf8(),
                    None,
                )
            })
            .collect()
    }

    /// Breaks `text` into lines no wider than `max`: Chinese may break between any two
    /// characters except before closing punctuation; a Latin word or number stays whole
    /// unless it alone is too wide.
    fn wrap(&self, text: &str, size: f32, max: f32) -> Vec<String> {
        const NO_START: &str = "，。、；：！？）】」』”’》〉%,.;:!?)]}·…—";
        let chars: Vec<char> = text.chars().collect();
        // Units that are not split: a run of ASCII letters/digits, or one other char
        // followed by any closing punctuation.
        let mut units: Vec<String> = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let mut u = String::new();
            if chars[i].is_ascii_alphanumeric() {
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], '.' | '-' | '_' | '/'))
                {
                    u.push(chars[i]);
                    i += 1;
                }
            } else {
                u.push(chars[i]);
                i += 1;
            }
            while i < chars.len() && NO_START.contains(chars[i]) {
                u.push(chars[i]);
                i += 1;
            }
            units.push(u);
        }
        let mut lines = Vec::new();
        let mut line = String::new();
        let mut w = 0.0;
        for u in units {
            let uw = self.width(&u, size);
            if w + uw > max && !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                w = 0.0;
            }
            if uw > max {
                // Too long for any line: split it by characters.
                for c in u.chars() {
                    let cw = self.char_width(c, size);
                    if w + cw > max && !line.is_empty() {
                        lines.push(std::mem::take(&mut line));
                        w = 0.0;
                    }
                    line.push(c);
                    w += cw;
                }
                continue;
            }
            if line.is_empty() && u.trim().is_empty() {
                continue;
            }
            line.push_str(&u);
            w += uw;
        }
        if !line.is_empty() || lines.is_empty() {
            lines.push(line);
        }
        lines
    }
}

struct Layout<'a> {
    m: Measure<'a>,
    pages: Vec<Vec<Op>>,
    y: f32,
}

impl Layout<'_> {
    fn text_w() -> f32 {
        PAGE_W - 2.0 * MARGIN_X
    }

    fn bottom() -> f32 {
        PAGE_H - MARGIN_BOTTOM
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN_TOP;
    }

    fn ensure(&mut self, h: f32) {
        if self.y + h > Self::bottom() {
            self.new_page();
        }
    }

    fn op(&mut self, op: Op) {
        if let Some(p) = self.pages.last_mut() {
            p.push(op);
        }
    }

    /// Lines of text at `size`, `indent` from the left margin (centred when `center`).
    fn lines(&mut self, text: &str, size: f32, indent: f32, center: bool, after: f32) {
        let lh = size * 1.6;
        let max = Self::text_w() - indent;
        for line in self.m.wrap(text, size, max) {
            self.ensure(lh);
            let x = if center {
                MARGIN_X + (Self::text_w() - self.m.width(&line, size)) / 2.0
            } else {
                MARGIN_X + indent
            };
            let y = self.y + size * 1.15;
            self.op(Op::Text {
                x,
                y,
                size,
                text: line,
            });
            self.y += lh;
        }
        self.y += after;
    }

    fn hline(&mut self, x1: f32, x2: f32, y: f32) {
        self.op(Op::Line {
            x1,
            y1: y,
            x2,
            y2: y,
            width: 0.6,
        });
    }

    fn wrap_row(&self, cells: &[String], ws: &[f32]) -> (Vec<Vec<String>>, f32) {
        let wrapped: Vec<Vec<String>> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = ws.get(i).copied().unwrap_or(40.0) - 2.0 * CELL_PAD;
                self.m.wrap(c, TABLE_TEXT, w)
            })
            .collect();
        let n = wrapped.iter().map(Vec::len).max().unwrap_or(1).max(1);
        (wrapped, n as f32 * TABLE_TEXT * 1.45 + 2.0 * CELL_PAD)
    }

    /// Draws a row at the current position (the caller made room).
    fn table_row(&mut self, t: &Table, wrapped: &[Vec<String>], h: f32, xs: &[f32], ws: &[f32]) {
        let size = TABLE_TEXT;
        let lh = size * 1.45;
        let top = self.y;
        for (i, lines) in wrapped.iter().enumerate() {
            let (Some(&x), Some(&w)) = (xs.get(i), ws.get(i)) else {
                continue;
            };
            for (k, line) in lines.iter().enumerate() {
                let tx = if t.right.get(i).copied().unwrap_or(false) {
                    x + w - CELL_PAD - self.m.width(line, size)
                } else {
                    x + CELL_PAD
                };
                let ty = top + CELL_PAD + k as f32 * lh + size * 1.1;
                self.op(Op::Text {
                    x: tx,
                    y: ty,
                    size,
                    text: line.clone(),
                });
            }
        }
        let right = MARGIN_X + Self::text_w();
        self.hline(MARGIN_X, right, top);
        self.hline(MARGIN_X, right, top + h);
        for x in xs.iter().copied().chain(std::iter::once(right)) {
            self.op(Op::Line {
                x1: x,
                y1: top,
                x2: x,
                y2: top + h,
                width: 0.6,
            });
        }
        self.y = top + h;
    }

    fn table(&mut self, t: &Table) {
        let total: f32 = t.widths.iter().sum::<f32>().max(0.01);
        let ws: Vec<f32> = t
            .widths
            .iter()
            .map(|w| w / total * Self::text_w())
            .collect();
        let mut xs = Vec::with_capacity(ws.len());
        let mut x = MARGIN_X;
        for w in &ws {
            xs.push(x);
            x += w;
        }
        let (head, hh) = self.wrap_row(&t.header, &ws);
        let first = t
            .rows
            .first()
            .map(|r| self.wrap_row(r, &ws).1)
            .unwrap_or(0.0);
        // The caption, the header and the first row stay together.
        let caption_h = if t.caption.is_some() {
            BODY * 1.6 + 2.0
        } else {
            0.0
        };
        self.ensure(caption_h + hh + first);
        if let Some(c) = &t.caption {
            self.lines(c, BODY, 0.0, true, 2.0);
        }
        self.table_row(t, &head, hh, &xs, &ws);
        for row in &t.rows {
            let (cells, h) = self.wrap_row(row, &ws);
            if self.y + h > Self::bottom() {
                // Continue on a new page under a repeated header.
                self.new_page();
                self.table_row(t, &head, hh, &xs, &ws);
            }
            self.table_row(t, &cells, h, &xs, &ws);
        }
        self.y += 10.0;
    }

    fn signatures(&mut self, parties: &[SignatureLine]) {
        self.ensure(parties.len() as f32 * 56.0 + 20.0);
        self.y += 12.0;
        for p in parties {
            self.lines(&format!("{}：{}", p.role, p.name), BODY, 0.0, false, 2.0);
            self.lines(
                "签章（签名）：________________　　签署日期：______年____月____日",
                BODY,
                0.0,
                false,
                14.0,
            );
        }
    }
}

/// Renders `doc` to PDF bytes with `font`.
pub fn render(font: &CjkFont, doc: &Doc) -> Result<Vec<u8>, String> {
    let mut l = Layout {
        m: Measure::new(font)?,
        pages: Vec::new(),
        y: MARGIN_TOP,
    };
    l.new_page();
    for b in &doc.blocks {
        match b {
            PdfBlock::Title(t) => {
                l.y += 4.0;
                l.lines(t, 18.0, 0.0, true, 10.0);
            }
            PdfBlock::Heading(t) => {
                l.ensure(BODY * 1.6 * 3.0);
                l.y += 6.0;
                l.lines(t, 12.0, 0.0, false, 2.0);
            }
            PdfBlock::Paragraph(t) => l.lines(t, BODY, 0.0, false, 3.0),
            PdfBlock::Table(t) => l.table(t),
            PdfBlock::Signatures(s) => l.signatures(s),
        }
    }
    let total = l.pages.len();
    let mut document = Document::new();
    document.set_metadata(
        krilla::metadata::Metadata::new()
            .title(doc.title.clone())
            .language("zh-CN".into())
            .creator("zhudai".into()),
    );
    let settings = PageSettings::from_wh(PAGE_W, PAGE_H).ok_or("bad page size")?;
    let black = Fill {
        paint: krilla::color::luma::Color::black().into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    };
    for (n, ops) in l.pages.iter().enumerate() {
        let mut page = document.start_page_with(settings.clone());
        let mut surface = page.surface();
        surface.set_fill(Some(black.clone()));
        let footer = format!("{}　　第 {} 页 / 共 {} 页", doc.footer, n + 1, total);
        let fw = l.m.width(&footer, 8.0);
        let footer_op = Op::Text {
            x: (PAGE_W - fw) / 2.0,
            y: PAGE_H - MARGIN_BOTTOM / 2.0,
            size: 8.0,
            text: footer,
        };
        for op in ops.iter().chain(std::iter::once(&footer_op)) {
            match op {
                Op::Text { x, y, size, text } => {
                    if !text.is_empty() {
                        surface.draw_glyphs(
                            Point::from_xy(*x, *y),
                            &l.m.glyphs(text),
                            font.font.clone(),
                            text,
                            *size,
                            false,
                        );
                    }
                }
                Op::Line {
                    x1,
                    y1,
                    x2,
                    y2,
                    width,
                } => {
                    let mut pb = PathBuilder::new();
                    pb.move_to(*x1, *y1);
                    pb.line_to(*x2, *y2);
                    if let Some(path) = pb.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            width: *width,
                            ..Default::default()
                        }));
                        surface.draw_path(&path);
                        surface.set_stroke(None);
                        surface.set_fill(Some(black.clone()));
                    }
                }
            }
        }
        surface.finish();
        page.finish();
    }
    document
        .finish()
        .map_err(|e| format!("the PDF could not be written: {e:?}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_missing_configured_font_is_a_clear_error() {
        let e = font(Some(Path::new("/nonexistent/font.ttc"))).unwrap_err();
        assert!(e.contains("/nonexistent/font.ttc"), "{e}");
    }

    #[test]
    fn wraps_chinese_without_closing_punctuation_at_line_start() {
        let Ok(f) = font(None) else {
            panic!("a CJK font is needed: run scripts/install-deps.sh");
        };
        let m = Measure::new(&f).unwrap();
        let text =
            "甲方应按下列还款计划按期足额还款，实际放款日与本合同生成日不同时，各期还款日顺延。";
        let lines = m.wrap(text, 10.0, 100.0);
        assert!(lines.len() > 2, "{lines:?}");
        assert_eq!(lines.concat(), text);
        for l in &lines[1..] {
            assert!(!l.starts_with('，') && !l.starts_with('。'), "{lines:?}");
        }
        for l in &lines {
            assert!(m.width(l, 10.0) <= 100.0 + 10.0, "{l}");
        }
        // A number is not split.
        let lines = m.wrap("金额 1234567.89 元", 10.0, 70.0);
        assert!(lines.iter().any(|l| l.contains("1234567.89")), "{lines:?}");
    }

    #[test]
    fn glyphs_advance_as_the_layout_measured_and_map_back_to_their_characters() {
        let f = font(None).expect("a CJK font: run scripts/install-deps.sh");
        let m = Measure::new(&f).unwrap();
        let text = "借款金额 30000.00 元，年化利率 7.2%（APR）";
        let glyphs = m.glyphs(text);
        assert_eq!(glyphs.len(), text.chars().count());
        // Drawn advances (normalised, times the size) add up to the measured width.
        let drawn: f32 = glyphs.iter().map(|g| g.x_advance * 10.0).sum();
        assert!((drawn - m.width(text, 10.0)).abs() < 1e-3, "{drawn}");
        // Each glyph covers its character's bytes, in order, and the font has it.
        let mut end = 0;
        for (g, (i, c)) in glyphs.iter().zip(text.char_indices()) {
            assert_eq!(g.text_range, i..i + c.len_utf8());
            assert_ne!(g.glyph_id, GlyphId::new(0), "no glyph for {c}");
            end = g.text_range.end;
        }
        assert_eq!(end, text.len());
    }

    #[test]
    fn renders_chinese_that_pdftotext_reads_back() {
        let f = font(None).expect("a CJK font: run scripts/install-deps.sh");
        let mut rows = Vec::new();
        for i in 1..=40 {
            rows.push(vec![
                i.to_string(),
                format!("2027-{:02}-29", (i % 12) + 1),
                "2,500.00".into(),
                "利息 180.00".into(),
            ]);
        }
        let doc = Doc {
            title: "个人借款合同".into(),
            footer: "合同编号 HT-TEST".into(),
            blocks: vec![
                PdfBlock::Title("个人借款合同".into()),
                PdfBlock::Paragraph("借款人（甲方）：张三　身份证号码：110105198501010021".into()),
                PdfBlock::Heading("第一条 借款金额".into()),
                PdfBlock::Paragraph(
                    "借款金额为人民币 30000.00 元（大写：人民币叁万元整）。".repeat(6),
                ),
                PdfBlock::Table(Table {
                    widths: vec![1.0, 2.0, 2.0, 3.0],
                    header: vec!["期数".into(), "还款日".into(), "本金".into(), "说明".into()],
                    rows,
                    right: vec![true, false, true, false],
                    caption: Some("还款计划表".into()),
                }),
                PdfBlock::Signatures(vec![SignatureLine {
                    role: "借款人（甲方）".into(),
                    name: "张三".into(),
                }]),
            ],
        };
        let pdf = render(&f, &doc).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pdf");
        std::fs::write(&path, &pdf).unwrap();
        let out = std::process::Command::new("pdftotext")
            .args(["-layout", "-enc", "UTF-8"])
            .arg(&path)
            .arg("-")
            .output()
            .expect("pdftotext (poppler-utils): run scripts/install-deps.sh");
        let text = String::from_utf8(out.stdout).unwrap();
        // pdftotext drops narrow spaces between CJK glyphs: compare without spaces.
        let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        for needle in [
            "个人借款合同",
            "110105198501010021",
            "人民币叁万元整",
            "还款计划表",
            "第1页/共2页",
            "签章（签名）",
            "2027-02-29",
        ] {
            assert!(flat.contains(needle), "{needle} not in:\n{text}");
        }
        // The header repeats on the second page.
        assert_eq!(text.matches("还款日").count(), 2, "{text}");
    }
}
