//! Quality filters as pipeline steps: drops with datatrove's reasons, and
//! C4's rewritten text in the output.

use crate::util::*;

#[test]
fn quality_steps_drop_with_reasons_and_c4_rewrites_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let good = "The whale rose from the sea. The crew cheered loudly. The captain smiled at last.\nThen the storm came in. Everyone ran below deck.";
    let docs = [
        serde_json::json!({"id": "messy", "text": format!("Home | About\n{good}\nWe use cookies to improve the site.")}),
        serde_json::json!({"id": "short", "text": "Only one sentence here."}),
        serde_json::json!({"id": "lorem", "text": format!("{good}\nLorem ipsum dolor sit amet.")}),
    ];
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &docs);
    let out = dir.path().join("out");
    let p = pipeline(
        dir.path(),
        &format!(
            "[input]\npath = \"{}\"\n[[step]]\ntype = \"c4_quality\"\n[[step]]\ntype = \"gopher_repetition\"\n\
             [output]\npath = \"{}\"\nformat = \"jsonl\"\nrejected = true\n",
            input.display(),
            out.display()
        ),
    );
    run_ok(&p, &[]);
    let kept = jsonl_docs(&out);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["id"], "messy");
    assert_eq!(kept[0]["text"], good, "C4 removed the menu and the cookie line");
    let rejected: Vec<(String, String)> = jsonl_docs(&out.join("rejected"))
        .iter()
        .map(|d| (d["id"].as_str().unwrap().to_owned(), d["rejected_reason"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        rejected,
        [("short".to_owned(), "too_few_sentences".to_owned()), ("lorem".to_owned(), "lorem_ipsum".to_owned())]
    );
    let stats = stats(&out);
    assert_eq!(stats["steps"][0]["reasons"]["too_few_sentences"], 1);
    assert_eq!(stats["steps"][1]["docs_in"], 1);
}
