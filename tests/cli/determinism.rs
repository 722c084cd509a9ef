//! The output depends on the input and the pipeline only: not on threads.

use crate::util::*;

fn pipeline_body(input: &str, out: &str, format: &str) -> String {
    format!(
        "[input]\npath = \"{input}\"\nbatch_size = 37\nsplit_bytes = 20000\n\
         [[step]]\ntype = \"length\"\nmin_chars = 200\n\
         [[step]]\ntype = \"field_value\"\nfield = \"meta.even\"\nkeep_values = [true]\n\
         [output]\npath = \"{out}\"\nformat = \"{format}\"\nshard_bytes = 30000\nrow_group_rows = 50\nrejected = true\n"
    )
}

#[test]
fn one_thread_and_four_threads_write_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let docs = generate_docs(3000, 1);
    write_jsonl(&input.join("a.jsonl"), &docs[..2000]);
    write_jsonl_zst(&input.join("b.jsonl.zst"), &docs[2000..]);
    for format in ["jsonl", "parquet"] {
        let out1 = dir.path().join(format!("{format}-1"));
        let out4 = dir.path().join(format!("{format}-4"));
        let p = pipeline(dir.path(), &pipeline_body(input.to_str().unwrap(), "unused", format));
        run_ok(&p, &["--threads", "1", "--output", out1.to_str().unwrap()]);
        run_ok(&p, &["--threads", "4", "--output", out4.to_str().unwrap()]);
        let (a, b) = (snapshot(&out1), snapshot(&out4));
        assert!(a.len() > 6, "several units and shards: {:?}", a.keys());
        assert!(a.keys().any(|k| k.starts_with("rejected/")));
        assert_eq!(a, b, "{format} output differs between 1 and 4 threads");
        let stats = stats(&out1);
        assert_eq!(stats["input_docs"], 3000);
        assert_eq!(stats, {
            let mut s4 = self::stats(&out4);
            for k in ["read_seconds", "write_seconds", "wall_seconds"] {
                s4[k] = stats[k].clone();
            }
            for (i, step) in s4["steps"].as_array_mut().unwrap().iter_mut().enumerate() {
                step["seconds"] = stats["steps"][i]["seconds"].clone();
            }
            s4
        });
    }
}
