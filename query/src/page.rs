//! A report as one self-contained HTML file: sections of charts (inline
//! SVG), tables and example texts, with inline styles and no external
//! resource, so it opens offline and can be mailed or archived as is.

use std::fmt::Write;

use crate::svg::escape;

/// The page's one script: once loaded, it counts the charts and those that
/// rendered nothing (no bar or line, or an empty box), and records both on
/// `<body>` (`data-charts`, `data-empty-charts`), where a headless browser
/// test reads them.
const CHECK_CHARTS: &str = r#"window.addEventListener('load', function () {
  var charts = Array.prototype.slice.call(document.querySelectorAll('svg.chart'));
  var empty = charts.filter(function (svg) {
    var box = svg.getBBox();
    return svg.querySelectorAll('.bar, .line').length === 0 || box.width === 0 || box.height === 0;
  });
  document.body.setAttribute('data-charts', String(charts.length));
  document.body.setAttribute('data-empty-charts', String(empty.length));
});"#;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1320px;color:#222}\
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:28px}\
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts svg{border:1px solid #eee;background:#fff}\
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}pre{white-space:pre-wrap;background:#f6f6f6;padding:8px;font-size:12px;max-height:12em;overflow:auto}\
p.note{color:#555;font-size:13px}";

#[derive(Default)]
pub struct Page {
    title: String,
    sections: Vec<Section>,
}

#[derive(Default)]
pub struct Section {
    title: String,
    html: String,
    charts: Vec<String>,
}

impl Page {
    pub fn new(title: &str) -> Page {
        Page { title: title.to_owned(), sections: Vec::new() }
    }

    /// Starts a section; what is added next goes into it.
    pub fn section(&mut self, title: &str) -> &mut Section {
        self.sections.push(Section { title: title.to_owned(), ..Section::default() });
        self.sections.last_mut().expect("just pushed")
    }

    /// How many charts the page holds.
    pub fn charts(&self) -> usize {
        self.sections.iter().map(|s| s.charts.len()).sum()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style><script>{CHECK_CHARTS}</script></head><body><h1>{}</h1>\n",
            escape(&self.title),
            escape(&self.title)
        );
        for section in &self.sections {
            let _ = write!(out, "<section><h2>{}</h2>{}", escape(&section.title), section.html);
            if !section.charts.is_empty() {
                let _ = write!(out, "<div class=\"charts\">{}</div>", section.charts.join(""));
            }
            out.push_str("</section>\n");
        }
        out.push_str("</body></html>\n");
        out
    }
}

impl Section {
    pub fn chart(&mut self, svg: String) -> &mut Section {
        self.charts.push(svg);
        self
    }

    pub fn note(&mut self, text: &str) -> &mut Section {
        let _ = write!(self.html, "<p class=\"note\">{}</p>", escape(text));
        self
    }

    /// A table; cells that parse as numbers are right-aligned.
    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) -> &mut Section {
        self.html.push_str("<table><tr>");
        for h in header {
            let _ = write!(self.html, "<th>{}</th>", escape(h));
        }
        self.html.push_str("</tr>");
        for row in rows {
            self.html.push_str("<tr>");
            for cell in row {
                let class = if cell.parse::<f64>().is_ok() { " class=\"n\"" } else { "" };
                let _ = write!(self.html, "<td{class}>{}</td>", escape(cell));
            }
            self.html.push_str("</tr>");
        }
        self.html.push_str("</table>");
        self
    }

    /// An example document: a heading line and its text, as written.
    pub fn example(&mut self, heading: &str, text: &str) -> &mut Section {
        let _ = write!(self.html, "<p class=\"note\">{}</p><pre>{}</pre>", escape(heading), escape(text));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_one_file_with_its_sections_and_no_outside_resource() {
        let mut page = Page::new("run <out>");
        page.section("Funnel").table(&["step", "dropped"], &[vec!["length".into(), "3".into()]]);
        page.section("Signals").chart(crate::svg::bars("x", &[("a".into(), 1)]));
        let html = page.render();
        assert!(html.contains("<h1>run &lt;out&gt;</h1>"));
        assert!(html.contains("<td class=\"n\">3</td>"));
        assert_eq!(page.charts(), 1);
        assert!(!html.contains("src=") && !html.contains("href="), "nothing is fetched");
    }
}
