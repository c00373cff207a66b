//! Contract PDFs (issue #6): A4 pages laid out here — line breaking for Chinese text
//! (no closing punctuation at a line's start, Latin words kept whole), tables with
//! wrapped cells and a repeated header, page footers — and written with `pdf-writer`:
//! the text as a CID-keyed font (Identity-H) whose embedded program is a subset of the
//! CJK OpenType font made by `subsetter` (CFF or TrueType outlines), with a ToUnicode map
//! so the text can be searched and extracted. See docs/decisions/0021-contract-pdf-writer.md
//! for why this is not done by a general PDF library.
//!
//! The font is found on the system (Debian's `fonts-noto-cjk`, WenQuanYi, Droid
//! fallback…) or configured by path (`contract_font_path`); in a collection (`.ttc`) the
//! Simplified Chinese face is chosen. It is read once per process.

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use skrifa::instance::{LocationRef, Size};
use skrifa::{FontRef, MetadataProvider};
use std::collections::HashMap;
use std::io::Write as _;
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
    data: Vec<u8>,
    info: FaceInfo,
}

/// What the PDF's font dictionaries say about the face, read once when it is loaded.
#[derive(Debug, Clone)]
struct FaceInfo {
    postscript_name: String,
    /// The face's bounding box (the `head` table's), in PDF glyph units (1000 per em).
    bbox: [f32; 4],
    ascent: f32,
    descent: f32,
    cap_height: f32,
    italic_angle: f32,
    stem_v: f32,
    serif: bool,
    monospace: bool,
    /// CFF outlines (embedded as `CIDFontType0C`); otherwise TrueType (`FontFile2`).
    cff: bool,
}

impl FaceInfo {
    fn read(f: &FontRef<'_>) -> Result<FaceInfo, String> {
        use skrifa::raw::TableProvider;
        let head = f.head().map_err(|e| format!("no head table: {e}"))?;
        let upem = f32::from(head.units_per_em()).max(1.0);
        let pdf = |v: f32| v / upem * 1000.0;
        let m = f.metrics(Size::unscaled(), LocationRef::default());
        let postscript_name = f
            .localized_strings(skrifa::string::StringId::POSTSCRIPT_NAME)
            .english_or_first()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "CJK".to_owned())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(100)
            .collect::<String>();
        let weight = f
            .os2()
            .map(|o| f32::from(o.us_weight_class()))
            .unwrap_or(400.0);
        let cff = f.cff().is_ok();
        if !cff && f.glyf().is_err() {
            return Err("the face has neither CFF nor TrueType (glyf) outlines; CFF2 (variable) fonts cannot be embedded".to_owned());
        }
        Ok(FaceInfo {
            serif: postscript_name.contains("Serif"),
            postscript_name,
            bbox: [
                pdf(f32::from(head.x_min())),
                pdf(f32::from(head.y_min())),
                pdf(f32::from(head.x_max())),
                pdf(f32::from(head.y_max())),
            ],
            ascent: pdf(m.ascent),
            descent: pdf(m.descent),
            cap_height: pdf(m.cap_height.unwrap_or(m.ascent)),
            italic_angle: m.italic_angle,
            stem_v: 10.0 + 0.244 * (weight - 50.0),
            monospace: m.is_monospace,
            cff,
        })
    }
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
    let info = FontRef::from_index(&data, index)
        .map_err(|e| e.to_string())
        .and_then(|f| FaceInfo::read(&f))
        .map_err(|e| format!("{} face {index} cannot be used: {e}", path.display()))?;
    Ok(CjkFont {
        path: path.to_owned(),
        index,
        data,
        info,
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

    /// A glyph's advance in ems (a missing advance counts as one em).
    fn advance_em(&self, gid: skrifa::GlyphId) -> f32 {
        self.metrics.advance_width(gid).unwrap_or(self.upem) / self.upem
    }

    fn char_width(&self, c: char, size: f32) -> f32 {
        self.advance_em(self.cmap.map(c).unwrap_or_default()) * size
    }

    fn width(&self, s: &str, size: f32) -> f32 {
        s.chars().map(|c| self.char_width(c, size)).sum()
    }

    /// The glyph that draws `c` (0, the font's `.notdef`, when it has none) and its
    /// advance in PDF glyph units (1000 per em): the same advance [`width`](Self::width)
    /// measured, so the text is drawn where the layout put it without adjustments.
    /// Chinese and the Latin of a contract need no shaping.
    fn glyph(&self, c: char) -> (u16, f32) {
        let gid = self.cmap.map(c).unwrap_or_default();
        (
            u16::try_from(gid.to_u32()).unwrap_or(0),
            self.advance_em(gid) * 1000.0,
        )
    }

    /// The advance of `.notdef`, glyph 0, in PDF glyph units.
    fn notdef_advance(&self) -> f32 {
        self.advance_em(skrifa::GlyphId::NOTDEF) * 1000.0
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
    for (n, ops) in l.pages.iter_mut().enumerate() {
        let footer = format!("{}　　第 {} 页 / 共 {} 页", doc.footer, n + 1, total);
        let fw = l.m.width(&footer, 8.0);
        ops.push(Op::Text {
            x: (PAGE_W - fw) / 2.0,
            y: PAGE_H - MARGIN_BOTTOM / 2.0,
            size: 8.0,
            text: footer,
        });
    }
    write_pdf(font, &l.m, &l.pages, &doc.title)
}

/// How hard the streams are compressed (zlib-rs). On the sample contract, level 6 (zlib's
/// usual default) was 1.4 % smaller than level 2 and rendered about 9 % fewer PDFs per
/// second; level 1 (a faster strategy) was 15 % larger. See docs/benchmarks.md,
/// "Session 14".
const DEFLATE_LEVEL: u32 = 2;

fn deflate(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut e = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::new(DEFLATE_LEVEL),
    );
    e.write_all(data)
        .and_then(|()| e.finish())
        .map_err(|e| format!("the PDF could not be compressed: {e}"))
}

/// The glyphs a document uses, renumbered from 0 (`.notdef`) in order of first use: the
/// new number is the CID in the content streams and the glyph's id in the subset.
struct Glyphs {
    remapper: subsetter::GlyphRemapper,
    /// By CID: the advance (PDF glyph units) and the character it was first used for.
    used: Vec<(f32, Option<char>)>,
}

impl Glyphs {
    /// Appends `text`'s CIDs to `out` as big-endian pairs (Identity-H).
    fn encode(&mut self, m: &Measure<'_>, text: &str, out: &mut Vec<u8>) {
        for c in text.chars() {
            let (gid, advance) = m.glyph(c);
            let cid = self.remapper.remap(gid);
            if usize::from(cid) == self.used.len() {
                self.used.push((advance, (gid != 0).then_some(c)));
            }
            out.extend_from_slice(&cid.to_be_bytes());
        }
    }
}

/// Serialises laid-out pages: one content stream per page, one embedded font subset.
fn write_pdf(
    font: &CjkFont,
    m: &Measure<'_>,
    pages: &[Vec<Op>],
    title: &str,
) -> Result<Vec<u8>, String> {
    const F0: Name<'static> = Name(b"F0");
    let info = &font.info;
    let mut glyphs = Glyphs {
        remapper: subsetter::GlyphRemapper::new(),
        used: vec![(m.notdef_advance(), None)],
    };
    let mut contents = Vec::with_capacity(pages.len());
    let mut shown = Vec::new();
    for ops in pages {
        let mut c = Content::new();
        for op in ops {
            match op {
                Op::Text { x, y, size, text } => {
                    if text.is_empty() {
                        continue;
                    }
                    shown.clear();
                    glyphs.encode(m, text, &mut shown);
                    c.begin_text();
                    c.set_font(F0, *size);
                    c.next_line(*x, PAGE_H - *y);
                    c.show(Str(&shown));
                    c.end_text();
                }
                Op::Line {
                    x1,
                    y1,
                    x2,
                    y2,
                    width,
                } => {
                    c.set_line_width(*width);
                    c.move_to(*x1, PAGE_H - *y1);
                    c.line_to(*x2, PAGE_H - *y2);
                    c.stroke();
                }
            }
        }
        contents.push(deflate(&c.finish())?);
    }

    let subset = subsetter::subset(&font.data, font.index, &glyphs.remapper)
        .map_err(|e| format!("the contract font could not be subset: {e}"))?;
    // A CFF font is embedded as its bare CFF program.
    let program: &[u8] = if info.cff {
        FontRef::new(&subset)
            .ok()
            .and_then(|f| f.table_data(skrifa::Tag::new(b"CFF ")))
            .map(|d| d.as_bytes())
            .ok_or("the font subset has no CFF table")?
    } else {
        &subset
    };
    let program_z = deflate(program)?;

    let mut next = 0;
    let mut id = || {
        next += 1;
        Ref::new(next)
    };
    let (catalog, tree, info_id) = (id(), id(), id());
    let (type0, cid_font, descriptor, to_unicode, file) = (id(), id(), id(), id(), id());
    let page_ids: Vec<(Ref, Ref)> = pages.iter().map(|_| (id(), id())).collect();

    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree).lang(TextStr("zh-CN"));
    pdf.pages(tree)
        .kids(page_ids.iter().map(|p| p.0))
        .count(i32::try_from(page_ids.len()).unwrap_or(i32::MAX));
    pdf.document_info(info_id)
        .title(TextStr(title))
        .creator(TextStr("zhudai"));
    for ((page, content), data) in page_ids.iter().zip(&contents) {
        let mut p = pdf.page(*page);
        p.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
            .parent(tree)
            .contents(*content);
        p.resources().fonts().pair(F0, type0);
        p.finish();
        pdf.stream(*content, data).filter(Filter::FlateDecode);
    }

    // The subset's tag names its glyphs, so different subsets get different names.
    let tag: String = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for (cid, (_, c)) in glyphs.used.iter().enumerate() {
            h.update((cid as u32).to_be_bytes());
            h.update(u32::from(c.unwrap_or('\u{0}')).to_be_bytes());
        }
        h.finalize()[..6]
            .iter()
            .map(|b| char::from(b'A' + b % 26))
            .collect()
    };
    let base = format!("{tag}+{}", info.postscript_name);
    let system_info = SystemInfo {
        registry: Str(b"Adobe"),
        ordering: Str(b"Identity"),
        supplement: 0,
    };
    let type0_name = if info.cff {
        format!("{base}-Identity-H")
    } else {
        base.clone()
    };
    pdf.type0_font(type0)
        .base_font(Name(type0_name.as_bytes()))
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid_font)
        .to_unicode(to_unicode);
    let mut cid = pdf.cid_font(cid_font);
    cid.subtype(if info.cff {
        CidFontType::Type0
    } else {
        CidFontType::Type2
    })
    .base_font(Name(base.as_bytes()))
    .system_info(system_info)
    .font_descriptor(descriptor)
    .default_width(0.0);
    if !info.cff {
        cid.cid_to_gid_map_predefined(Name(b"Identity"));
    }
    cid.widths().consecutive(0, glyphs.used.iter().map(|g| g.0));
    cid.finish();

    let mut flags = FontFlags::SYMBOLIC;
    flags.set(FontFlags::SERIF, info.serif);
    flags.set(FontFlags::FIXED_PITCH, info.monospace);
    flags.set(FontFlags::ITALIC, info.italic_angle != 0.0);
    let mut d = pdf.font_descriptor(descriptor);
    d.name(Name(base.as_bytes()))
        .flags(flags)
        .bbox(Rect::new(
            info.bbox[0],
            info.bbox[1],
            info.bbox[2],
            info.bbox[3],
        ))
        .italic_angle(info.italic_angle)
        .ascent(info.ascent)
        .descent(info.descent)
        .cap_height(info.cap_height)
        .stem_v(info.stem_v);
    if info.cff {
        d.font_file3(file);
    } else {
        d.font_file2(file);
    }
    d.finish();

    let mut cmap = UnicodeCmap::new(Name(b"Custom"), system_info);
    for (cid, (_, c)) in glyphs.used.iter().enumerate() {
        if let (Ok(cid), Some(c)) = (u16::try_from(cid), c) {
            cmap.pair(cid, *c);
        }
    }
    let cmap_z = deflate(&cmap.finish())?;
    pdf.cmap(to_unicode, &cmap_z)
        .name(Name(b"Custom"))
        .system_info(system_info)
        .filter(Filter::FlateDecode);

    let mut s = pdf.stream(file, &program_z);
    s.filter(Filter::FlateDecode);
    if info.cff {
        s.pair(Name(b"Subtype"), Name(b"CIDFontType0C"));
    } else {
        s.pair(
            Name(b"Length1"),
            i32::try_from(program.len()).unwrap_or(i32::MAX),
        );
    }
    s.finish();
    Ok(pdf.finish())
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
    fn glyphs_advance_as_the_layout_measured() {
        let f = font(None).expect("a CJK font: run scripts/install-deps.sh");
        let m = Measure::new(&f).unwrap();
        let text = "借款金额 30000.00 元，年化利率 7.2%（APR）";
        // Drawn advances (PDF glyph units, times the size) add up to the measured width.
        let drawn: f32 = text.chars().map(|c| m.glyph(c).1 / 1000.0 * 10.0).sum();
        assert!((drawn - m.width(text, 10.0)).abs() < 1e-3, "{drawn}");
        for c in text.chars() {
            assert_ne!(m.glyph(c).0, 0, "no glyph for {c}");
        }
        // A character the font lacks is drawn with .notdef.
        assert_eq!(m.glyph('\u{10FFFD}').0, 0);
    }

    fn sample() -> Doc {
        let mut rows = Vec::new();
        for i in 1..=40 {
            rows.push(vec![
                i.to_string(),
                format!("2027-{:02}-29", (i % 12) + 1),
                "2,500.00".into(),
                "利息 180.00".into(),
            ]);
        }
        Doc {
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
        }
    }

    /// Runs a poppler tool on `pdf` (written to a file) and returns its standard output
    /// and the directory, which holds any files it wrote.
    fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> (String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pdf");
        std::fs::write(&path, pdf).unwrap();
        let out = std::process::Command::new(tool)
            .args(args)
            .arg(&path)
            .args(if tool == "pdftoppm" {
                vec![dir.path().join("page").into_os_string()]
            } else if tool == "pdffonts" {
                vec![]
            } else {
                vec!["-".into()]
            })
            .output()
            .unwrap_or_else(|e| panic!("{tool} (poppler-utils): run scripts/install-deps.sh: {e}"));
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (String::from_utf8(out.stdout).unwrap(), dir)
    }

    #[test]
    fn renders_chinese_that_pdftotext_reads_back() {
        let f = font(None).expect("a CJK font: run scripts/install-deps.sh");
        let pdf = render(&f, &sample()).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let (text, _dir) = poppler("pdftotext", &["-layout", "-enc", "UTF-8"], &pdf);
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

    /// Both outline kinds: Noto Sans CJK (CFF, the default) and WenQuanYi Micro Hei
    /// (TrueType), both installed by scripts/install-deps.sh.
    #[test]
    fn embeds_cff_and_truetype_subsets_that_poppler_lists_places_and_draws() {
        for (path, kind) in [
            (
                "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
                "CID Type 0C",
            ),
            (
                "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
                "CID TrueType",
            ),
        ] {
            let f = font(Some(Path::new(path))).expect("run scripts/install-deps.sh");
            let doc = sample();
            let pdf = render(&f, &doc).unwrap();
            // Deterministic: the contract's SHA-256 depends only on its content.
            assert_eq!(pdf, render(&f, &doc).unwrap(), "{path}");

            // One font, embedded as a subset, with a ToUnicode map.
            let (fonts, _dir) = poppler("pdffonts", &[], &pdf);
            let rows: Vec<&str> = fonts.lines().skip(2).collect();
            assert_eq!(rows.len(), 1, "{fonts}");
            assert!(
                rows[0].contains(kind) && rows[0].contains("Identity-H"),
                "{fonts}"
            );
            let cols: Vec<&str> = rows[0].split_whitespace().collect();
            assert_eq!(
                cols[cols.len() - 5..cols.len() - 2],
                ["yes", "yes", "yes"],
                "{fonts}"
            );
            let (tag, _) = cols[0].split_once('+').unwrap();
            assert!(
                tag.len() == 6 && tag.bytes().all(|b| b.is_ascii_uppercase()),
                "{fonts}"
            );

            // The centred title is where the layout put it, as wide as it measured:
            // the widths in the font dictionary are the layout's.
            let (html, _dir) = poppler("pdftotext", &["-bbox", "-f", "1", "-l", "1"], &pdf);
            let word = html
                .lines()
                .find(|l| l.contains("<word") && l.contains(">个人借款合同<"))
                .unwrap_or_else(|| panic!("no title in {html}"));
            let attr = |name: &str| -> f32 {
                let at = word
                    .find(&format!("{name}=\""))
                    .unwrap_or_else(|| panic!("no {name} in {word}"))
                    + name.len()
                    + 2;
                word[at..].split('"').next().unwrap().parse().unwrap()
            };
            let m = Measure::new(&f).unwrap();
            let w = m.width("个人借款合同", 18.0);
            let x = MARGIN_X + (PAGE_W - 2.0 * MARGIN_X - w) / 2.0;
            assert!(
                (attr("xMin") - x).abs() < 0.5,
                "{path}: {word} against x = {x}"
            );
            assert!(
                (attr("xMax") - attr("xMin") - w).abs() < 0.5,
                "{path}: {word} against w = {w}"
            );

            // And it draws ink: page 1 at 30 dpi, in grey.
            let (_, dir) = poppler(
                "pdftoppm",
                &["-r", "30", "-gray", "-f", "1", "-l", "1", "-singlefile"],
                &pdf,
            );
            let pgm = std::fs::read(dir.path().join("page.pgm")).unwrap();
            let header: Vec<&[u8]> = pgm.splitn(5, |b| b.is_ascii_whitespace()).collect();
            assert_eq!(header[0], b"P5");
            let (wpx, hpx) = (
                std::str::from_utf8(header[1])
                    .unwrap()
                    .parse::<usize>()
                    .unwrap(),
                std::str::from_utf8(header[2])
                    .unwrap()
                    .parse::<usize>()
                    .unwrap(),
            );
            let pixels = &pgm[pgm.len() - wpx * hpx..];
            let dark = pixels.iter().filter(|p| **p < 160).count();
            assert!(
                dark > 1_000 && dark < pixels.len() / 4,
                "{path}: {dark} dark of {}",
                pixels.len()
            );
        }
    }
}
