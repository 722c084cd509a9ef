use std::io::Read;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, out, which) = (&args[1], &args[2], &args[3]);
    std::fs::create_dir_all(out).unwrap();
    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(format!("{dir}/ground-truth.json")).unwrap()).unwrap();
    let mut total_bytes = 0usize;
    let t = std::time::Instant::now();
    let mut pages = Vec::new();
    for (id, v) in truth.as_object().unwrap() {
        let mut html = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(format!("{dir}/{id}.html.gz")).unwrap()).read_to_string(&mut html).unwrap();
        pages.push((id.clone(), html, v["url"].as_str().unwrap_or("").to_string()));
    }
    for (id, html, url) in &pages {
        total_bytes += html.len();
        let text = match which.as_str() {
            "traf" => match rs_trafilatura::extract(html) { Ok(r) => r.content_text, Err(_) => String::new() },
            _ => {
                let mut r = dom_smoothie::Readability::new(html.as_str(), Some(url.as_str()), None).unwrap();
                match r.parse() { Ok(a) => a.text_content.to_string(), Err(_) => String::new() }
            }
        };
        std::fs::write(format!("{out}/{id}.json"), serde_json::json!({"articleBody": text}).to_string()).unwrap();
    }
    let s = t.elapsed().as_secs_f64();
    let name = if which == "traf" { "rs-trafilatura 0.2.2" } else { "dom_smoothie 0.19.0" };
    eprintln!("{name}: {} pages, {:.1} pages/s, {:.1} MB/s", pages.len(), pages.len() as f64 / s, total_bytes as f64 / s / 1e6);
}
