//! Charts as inline SVG, drawn here so that a report is one file that
//! needs no script library and no network when it is opened.

use std::fmt::Write;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 38.0;
const BOTTOM: f64 = 40.0;

/// The colours of a chart's series, in order.
const PALETTE: &[&str] = &["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2"];

/// A histogram: `counts[i]` values in `[lo + i*width, lo + (i+1)*width)`,
/// the last bin closed; `above` values past the last bin shown as one bar
/// of its own; each of `marks` a labelled vertical line (a threshold).
pub fn histogram(title: &str, lo: f64, width: f64, counts: &[u64], above: u64, marks: &[(f64, String)]) -> String {
    let bars = counts.len() + usize::from(above > 0);
    let hi = lo + width * counts.len() as f64;
    let top = counts.iter().copied().chain([above]).max().unwrap_or(0).max(1) as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let bar_w = plot_w / bars.max(1) as f64;
    let mut svg = open(title);
    axes(&mut svg, top);
    for (i, &n) in counts.iter().chain(if above > 0 { Some(&above) } else { None }).enumerate() {
        let h = plot_h * n as f64 / top;
        let fill = if i == counts.len() { "#9e9e9e" } else { PALETTE[0] };
        let x = LEFT + i as f64 * bar_w;
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{fill}"><title>{}: {n}</title></rect>"#,
            TOP + plot_h - h,
            (bar_w - 1.0).max(0.5),
            if i == counts.len() {
                format!("above {}", number(hi))
            } else {
                format!("{} to {}", number(lo + i as f64 * width), number(lo + (i + 1) as f64 * width))
            },
        );
    }
    // x labels: the range's ends, and "more" under the overflow bar.
    let _ = write!(svg, r#"<text x="{LEFT}" y="{:.1}" font-size="11">{}</text>"#, HEIGHT - BOTTOM + 14.0, number(lo));
    let end_x = LEFT + bar_w * counts.len() as f64;
    let _ = write!(
        svg,
        r#"<text x="{end_x:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"#,
        HEIGHT - BOTTOM + 14.0,
        number(hi)
    );
    if above > 0 {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">more</text>"#,
            end_x + bar_w / 2.0,
            HEIGHT - BOTTOM + 27.0
        );
    }
    for (k, (value, label)) in marks.iter().enumerate() {
        let slack = (hi - lo).abs() * 1e-9;
        if !(lo - slack..=hi + slack).contains(value) || width <= 0.0 {
            continue;
        }
        let x = LEFT + (value - lo) / (hi - lo).max(f64::MIN_POSITIVE) * (bar_w * counts.len() as f64);
        // A label near the right edge is written leftwards of its line.
        let (label_x, anchor) = if x > WIDTH * 0.7 { (x - 3.0, "end") } else { (x + 3.0, "start") };
        let _ = write!(
            svg,
            r##"<line class="mark" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" stroke="#d62728" stroke-width="2" stroke-dasharray="4 3"/><text x="{label_x:.1}" y="{:.1}" font-size="11" fill="#d62728" text-anchor="{anchor}">{}</text>"##,
            TOP + plot_h,
            TOP + 12.0 + 12.0 * k as f64,
            escape(label)
        );
    }
    close(svg)
}

/// Horizontal bars, one per row, labelled with the row's name and count.
pub fn bars(title: &str, rows: &[(String, u64)]) -> String {
    let row_h = 20.0;
    let height = TOP + row_h * rows.len().max(1) as f64 + 12.0;
    let label_w = 230.0;
    let top = rows.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let plot_w = WIDTH - label_w - 80.0;
    let mut svg = open_sized(title, height);
    for (i, (name, n)) in rows.iter().enumerate() {
        let y = TOP + i as f64 * row_h;
        let w = plot_w * *n as f64 / top;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end">{}</text><rect class="bar" x="{label_w}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {n}</title></rect><text x="{:.1}" y="{:.1}" font-size="12">{n}</text>"#,
            label_w - 6.0,
            y + 13.0,
            escape(&shorten(name, 30)),
            w.max(0.5),
            row_h - 4.0,
            PALETTE[i % PALETTE.len()],
            escape(name),
            label_w + w + 4.0,
            y + 13.0
        );
    }
    close(svg)
}

/// Lines over a shared x axis (training steps): each series a name and its
/// points, drawn in the palette's order, with a legend.
pub fn lines(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let points = series.iter().flat_map(|(_, p)| p.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 == x0 {
        x1 = x0 + 1.0;
    }
    if y1 == y0 {
        (y0, y1) = (y0 - 0.5, y1 + 0.5);
    }
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let mut svg = open(title);
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{:.1}" stroke="#444"/><line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#444"/>"##,
        TOP + plot_h,
        WIDTH - RIGHT,
        TOP + plot_h,
        TOP + plot_h
    );
    for (y, v) in [(TOP + 4.0, y1), (TOP + plot_h, y0)] {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{y:.1}" font-size="11" text-anchor="end">{}</text>"#,
            LEFT - 4.0,
            number(v)
        );
    }
    for (x, v, anchor) in [(LEFT, x0, "start"), (WIDTH - RIGHT, x1, "end")] {
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="{anchor}">{}</text>"#,
            HEIGHT - BOTTOM + 14.0,
            number(v)
        );
    }
    for (k, (name, pts)) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let path: Vec<String> = pts
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| {
                format!(
                    "{:.1},{:.1}",
                    LEFT + (x - x0) / (x1 - x0) * plot_w,
                    TOP + plot_h - (y - y0) / (y1 - y0) * plot_h
                )
            })
            .collect();
        if path.len() == 1 {
            let (x, y) = path[0].split_once(',').expect("x,y");
            let _ = write!(svg, r#"<circle class="line" cx="{x}" cy="{y}" r="3" fill="{colour}"/>"#);
        } else if !path.is_empty() {
            let _ = write!(
                svg,
                r#"<polyline class="line" fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                path.join(" ")
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" fill="{colour}">{}</text>"#,
            LEFT + 8.0 + 150.0 * k as f64,
            HEIGHT - 6.0,
            escape(name)
        );
    }
    close(svg)
}

fn open(title: &str) -> String {
    open_sized(title, HEIGHT)
}

/// A chart's frame and title; what follows the title's first ` (` or ` [`
/// (its figures) goes on a second, smaller line.
fn open_sized(title: &str, height: f64) -> String {
    let split = [" (", " ["].iter().filter_map(|p| title.find(p)).min().unwrap_or(title.len());
    let (name, detail) = title.split_at(split);
    format!(
        r##"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" role="img"><title>{}</title><text x="12" y="15" font-size="13" font-weight="bold">{}</text><text x="12" y="29" font-size="10" fill="#555">{}</text>"##,
        escape(title),
        escape(name),
        escape(detail.trim())
    )
}

fn close(mut svg: String) -> String {
    svg.push_str("</svg>");
    svg
}

fn axes(svg: &mut String, top: f64) {
    let plot_h = HEIGHT - TOP - BOTTOM;
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{:.1}" stroke="#444"/><line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#444"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">0</text>"##,
        TOP + plot_h,
        WIDTH - RIGHT,
        TOP + plot_h,
        TOP + plot_h,
        LEFT - 4.0,
        TOP + 4.0,
        number(top),
        LEFT - 4.0,
        TOP + plot_h
    );
}

/// A number as a chart label: integers plainly, others to 3 significant digits.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 1000.0 || v.abs() < 0.01 {
        format!("{v:.3e}")
    } else {
        format!("{}", (v * 1000.0).round() / 1000.0)
    }
}

fn shorten(s: &str, chars: usize) -> String {
    if s.chars().count() <= chars {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(chars - 1).collect::<String>())
    }
}

/// Text for HTML and SVG.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_has_a_bar_per_bin_the_overflow_and_its_marks() {
        let svg = histogram("words", 0.0, 10.0, &[1, 5, 0, 2], 3, &[(25.0, "min 25".into()), (99.0, "off".into())]);
        assert_eq!(svg.matches(r#"class="bar""#).count(), 5);
        assert_eq!(svg.matches(r#"class="mark""#).count(), 1, "a mark outside the range is not drawn");
        assert!(svg.contains("<title>above 40: 3</title>"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn labels_are_escaped() {
        let svg = bars("reasons", &[("<script>".into(), 3)]);
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn lines_draw_every_series() {
        let svg = lines("loss", &[("train".into(), vec![(1.0, 3.0), (2.0, 2.5)]), ("val".into(), vec![(2.0, 2.7)])]);
        assert_eq!(svg.matches(r#"class="line""#).count(), 2);
    }
}
