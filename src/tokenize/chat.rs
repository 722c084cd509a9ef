//! Chat records to text and the spans a model is trained on, as Hugging
//! Face's `apply_chat_template` renders them.
//!
//! The template is the tokenizer's own (`chat_template` in the
//! tokenizer_config.json beside its tokenizer.json, or chat_template.jinja
//! there) or a file given with `--chat-template`. It is rendered with
//! minijinja set up as transformers sets up Jinja2: `trim_blocks`,
//! `lstrip_blocks`, loop controls, Python's string and dict methods,
//! `raise_exception`, `strftime_now`, and a `tojson` that writes what
//! Python's `json.dumps` writes; the special tokens of tokenizer_config.json
//! (`bos_token`, `eos_token`, ...) are variables.
//!
//! Trained spans come from the template's `{% generation %}` blocks, as
//! `return_assistant_tokens_mask` takes them: each block is rendered through
//! a filter that brackets it with two noncharacters, whose positions are
//! the spans once they are taken out. A template without such blocks gets
//! the spans by rendering each conversation up to every assistant turn: the
//! text between the prompt (rendered with `add_generation_prompt`) and the
//! end of that turn is the turn. A template that does not render a
//! conversation's start as a prefix of the whole cannot be read that way,
//! and says so.

use std::ops::Range;
use std::path::{Path, PathBuf};

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use serde::de::{self, Deserializer, MapAccess, SeqAccess};
use serde::{Deserialize, Serialize};

/// Bracket a `{% generation %}` block in the rendered text (Unicode
/// noncharacters: never in text, refused in records).
const OPEN: char = '\u{FDD0}';
const CLOSE: char = '\u{FDD1}';

/// Which tokens of a chat record are trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TrainOn {
    /// The assistant turns (a prompt/completion record's completion).
    #[default]
    Assistant,
    /// The last assistant turn only (the completion).
    Completion,
    /// Every token.
    All,
}

impl crate::runtime::options::Named for TrainOn {
    const ALL: &'static [Self] = &[TrainOn::Assistant, TrainOn::Completion, TrainOn::All];

    fn name(self) -> &'static str {
        match self {
            TrainOn::Assistant => "assistant",
            TrainOn::Completion => "completion",
            TrainOn::All => "all",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{}: {message}", path.display())]
    Unreadable { path: PathBuf, message: String },
    #[error("{}: no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja): pass --chat-template FILE", dir.display())]
    Missing { dir: PathBuf },
    #[error("{}: the chat template does not compile: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
}

/// Why one chat record yields no tokens; the kind is its key in stats.json.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The template raised (`raise_exception`) or could not render it.
    #[error("{0}")]
    Template(String),
    /// The record is not a conversation.
    #[error("{0}")]
    Record(String),
}

impl RecordError {
    pub fn kind(&self) -> &'static str {
        match self {
            RecordError::Template(_) => "chat_template",
            RecordError::Record(_) => "chat_record",
        }
    }
}

/// A conversation rendered: the text and the byte ranges trained on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub trained: Vec<Range<usize>>,
}

impl Rendered {
    /// `text`, trained on from byte `start` to its end.
    pub fn trained_from(text: String, start: usize) -> Rendered {
        let end = text.len();
        Rendered { trained: std::iter::once(start..end).collect(), text }
    }
}

pub struct ChatTemplate {
    env: Environment<'static>,
    /// Where the template came from, for errors.
    pub source: PathBuf,
    /// `bos_token`, `eos_token`, ... as tokenizer_config.json names them.
    specials: Vec<(String, String)>,
    has_generation: bool,
}

impl ChatTemplate {
    /// The template for `tokenizer` (a tokenizer.json path): `template`
    /// when given, else the one in the tokenizer's folder.
    pub fn load(tokenizer: &Path, template: Option<&Path>) -> Result<ChatTemplate, TemplateError> {
        let dir = tokenizer.parent().unwrap_or(Path::new("."));
        let config_path = dir.join("tokenizer_config.json");
        let config: serde_json::Value = match std::fs::read(&config_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| TemplateError::Unreadable { path: config_path.clone(), message: e.to_string() })?,
            Err(_) => serde_json::Value::Null,
        };
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map_err(|e| TemplateError::Unreadable { path: path.to_owned(), message: e.to_string() })
        };
        let (source, text) = match template {
            Some(path) => (path.to_owned(), read(path)?),
            None => match named_template(&config["chat_template"]) {
                Some(text) => (config_path.clone(), text),
                None if dir.join("chat_template.jinja").is_file() => {
                    let path = dir.join("chat_template.jinja");
                    let text = read(&path)?;
                    (path, text)
                }
                None => return Err(TemplateError::Missing { dir: dir.to_owned() }),
            },
        };
        let specials = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]
            .iter()
            .filter_map(|k| special_token(&config[*k]).map(|v| (k.to_string(), v)))
            .collect();
        ChatTemplate::from_source(&text, source, specials)
    }

    pub fn from_source(
        text: &str,
        source: PathBuf,
        specials: Vec<(String, String)>,
    ) -> Result<ChatTemplate, TemplateError> {
        let generation = regex::Regex::new(r"\{%(-?)\s*(end)?generation\s*(-?)%\}").expect("a valid pattern");
        let has_generation = generation.is_match(text);
        let text = generation
            .replace_all(text, |c: &regex::Captures| match c.get(2) {
                Some(_) => format!("{{%{} endfilter {}%}}", &c[1], &c[3]),
                None => format!("{{%{} filter curate_generation {}%}}", &c[1], &c[3]),
            })
            .into_owned();
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_filter("curate_generation", |s: String| format!("{OPEN}{s}{CLOSE}"));
        env.add_function("raise_exception", |message: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned("chat", text)
            .map_err(|e| TemplateError::Syntax { path: source.clone(), message: e.to_string() })?;
        Ok(ChatTemplate { env, source, specials, has_generation })
    }

    /// The special token a tokenizer_config.json names (`eos_token`), if any.
    pub fn special(&self, name: &str) -> Option<&str> {
        self.specials.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn render_raw(&self, messages: &[Value], add_generation_prompt: bool) -> Result<String, RecordError> {
        let mut context: Vec<(String, Value)> =
            self.specials.iter().map(|(k, v)| (k.clone(), Value::from(v))).collect();
        context.push(("messages".into(), Value::from(messages.to_vec())));
        context.push(("tools".into(), Value::from(())));
        context.push(("documents".into(), Value::from(())));
        context.push(("add_generation_prompt".into(), Value::from(add_generation_prompt)));
        let template = self.env.get_template("chat").expect("added at load");
        template.render(Value::from_iter(context)).map_err(|e| {
            RecordError::Template(match e.detail() {
                Some(detail) if e.kind() == ErrorKind::InvalidOperation => detail.to_owned(),
                _ => format!("{e:#}"),
            })
        })
    }

    /// Renders `messages`; with `add_generation_prompt`, the header of the
    /// next assistant turn follows.
    fn render(&self, messages: &[Value], add_generation_prompt: bool) -> Result<Rendered, RecordError> {
        let raw = self.render_raw(messages, add_generation_prompt)?;
        let mut text = String::with_capacity(raw.len());
        let mut trained = Vec::new();
        let mut open = None;
        for c in raw.chars() {
            match c {
                OPEN => open = Some(text.len()),
                CLOSE => {
                    if let Some(start) = open.take() {
                        trained.push(start..text.len());
                    }
                }
                c => text.push(c),
            }
        }
        Ok(Rendered { text, trained })
    }

    /// A `messages` record: the conversation and the spans `train_on` keeps.
    pub fn messages(&self, messages: &[Value], train_on: TrainOn) -> Result<Rendered, RecordError> {
        let whole = self.render(messages, false)?;
        if train_on == TrainOn::All {
            return Ok(Rendered::trained_from(whole.text, 0));
        }
        let mut spans = if self.has_generation { whole.trained.clone() } else { self.turns(messages, &whole.text)? };
        if train_on == TrainOn::Completion {
            spans = spans.pop().into_iter().collect();
        }
        Ok(Rendered { text: whole.text, trained: spans })
    }

    /// A prompt/completion record whose two parts are messages: the
    /// completion is what follows the prompt rendered with its generation
    /// prompt (as TRL takes it).
    pub fn prompt_completion(
        &self,
        prompt: &[Value],
        completion: &[Value],
        train_on: TrainOn,
    ) -> Result<Rendered, RecordError> {
        let all: Vec<Value> = prompt.iter().chain(completion).cloned().collect();
        let whole = self.render(&all, false)?;
        if train_on == TrainOn::All {
            return Ok(Rendered::trained_from(whole.text, 0));
        }
        let start = self.render(prompt, true)?.text;
        if !whole.text.starts_with(&start) {
            return Err(not_prefix(prompt.len()));
        }
        Ok(Rendered::trained_from(whole.text, start.len()))
    }

    /// The spans of the assistant turns, by rendering the conversation up to each.
    fn turns(&self, messages: &[Value], whole: &str) -> Result<Vec<Range<usize>>, RecordError> {
        let mut spans = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if m.get_attr("role").ok().as_ref().and_then(Value::as_str) != Some("assistant") {
                continue;
            }
            let prompt = self.render(&messages[..i], true)?.text;
            let through = self.render(&messages[..=i], false)?.text;
            if !through.starts_with(&prompt) || !whole.starts_with(&through) {
                return Err(not_prefix(i));
            }
            if through.len() > prompt.len() {
                spans.push(prompt.len()..through.len());
            }
        }
        Ok(spans)
    }
}

fn not_prefix(i: usize) -> RecordError {
    RecordError::Template(format!(
        "the template renders the conversation up to message {i} differently from the start of the whole \
         conversation, so the assistant turns cannot be found; use a template with {{% generation %}} blocks \
         (--chat-template) or train_on = \"all\""
    ))
}

/// `chat_template` as a string, or the "default" of a list of named ones.
fn named_template(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(list) => {
            list.iter().find(|t| t["name"] == "default").and_then(|t| t["template"].as_str()).map(str::to_owned)
        }
        _ => None,
    }
}

/// A special token as tokenizer_config.json writes it: a string, or an
/// added-token object with its `content`.
fn special_token(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_owned),
        _ => None,
    }
}

/// Parses a JSON array of messages into template values, keeping each
/// object's key order and dropping the keys whose value is null (as
/// transformers does before rendering).
pub fn parse_messages(json: &str) -> Result<Vec<Value>, RecordError> {
    let fail = |message: String| RecordError::Record(message);
    if json.contains([OPEN, CLOSE]) {
        return Err(fail("holds the noncharacters U+FDD0 or U+FDD1, which curate reserves".into()));
    }
    let value = serde_json::Deserializer::from_str(json)
        .deserialize_any(JsonToValue { top: true })
        .map_err(|e| fail(format!("not JSON: {e}")))?;
    if value.kind() != ValueKind::Seq {
        return Err(fail("is not a list of messages".into()));
    }
    let messages: Vec<Value> = value.try_iter().map_err(|e| fail(e.to_string()))?.collect();
    for (i, m) in messages.iter().enumerate() {
        if m.kind() != ValueKind::Map {
            return Err(fail(format!("message {i} is not an object")));
        }
        if m.get_attr("role").ok().as_ref().and_then(Value::as_str).is_none() {
            return Err(fail(format!("message {i} has no string \"role\"")));
        }
    }
    Ok(messages)
}

/// serde JSON → minijinja values, objects in order.
struct JsonToValue {
    /// Null keys are dropped inside messages (the top list's objects).
    top: bool,
}

impl<'de> de::DeserializeSeed<'de> for JsonToValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for JsonToValue {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::from(()))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        // The top list's objects are messages, whose null keys go.
        while let Some(v) = seq.next_element_seed(JsonToValue { top: false })? {
            items.push(if self.top { without_nulls(v) } else { v });
        }
        Ok(Value::from(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut pairs: Vec<(String, Value)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(JsonToValue { top: false })?;
            match pairs.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => *v = value,
                None => pairs.push((key, value)),
            }
        }
        Ok(Value::from_iter(pairs))
    }
}

fn without_nulls(message: Value) -> Value {
    if message.kind() != ValueKind::Map {
        return message;
    }
    let Ok(keys) = message.try_iter() else { return message };
    let pairs: Vec<(Value, Value)> = keys
        .filter_map(|k| {
            let v = message.get_item(&k).ok()?;
            (!v.is_none()).then_some((k, v))
        })
        .collect();
    Value::from_iter(pairs)
}

/// Python's `json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)`,
/// as transformers' `tojson` filter calls it.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Value> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match (v.as_i64(), v.as_str()) {
            (Some(n), _) => Some(" ".repeat(n.max(0) as usize)),
            (None, Some(s)) => Some(s.to_owned()),
            _ => return Err(Error::new(ErrorKind::InvalidOperation, "tojson: indent is not a number or string")),
        },
    };
    let (item, key) = match separators.filter(|s| !s.is_none()) {
        Some(s) => {
            let parts: Vec<Value> = s.try_iter()?.collect();
            match parts.as_slice() {
                [a, b] => (a.as_str().unwrap_or(",").to_owned(), b.as_str().unwrap_or(":").to_owned()),
                _ => return Err(Error::new(ErrorKind::InvalidOperation, "tojson: separators is not a pair")),
            }
        }
        None if indent.is_some() => (",".to_owned(), ": ".to_owned()),
        None => (", ".to_owned(), ": ".to_owned()),
    };
    let mut out = String::new();
    let style = Style { indent, item, key, sort_keys: sort_keys.unwrap_or(false) };
    write_json(&mut out, value, &style, 0)?;
    Ok(Value::from_safe_string(out))
}

struct Style {
    indent: Option<String>,
    item: String,
    key: String,
    sort_keys: bool,
}

fn write_json(out: &mut String, v: &Value, s: &Style, depth: usize) -> Result<(), Error> {
    let newline = |out: &mut String, depth: usize| {
        if let Some(unit) = &s.indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(unit);
            }
        }
    };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if v.is_integer() {
                out.push_str(&v.to_string());
            } else {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                out.push_str(&python_float(f));
            }
        }
        ValueKind::String => out.push_str(&serde_json::to_string(v.as_str().unwrap_or_default()).expect("a string")),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&s.item);
                }
                newline(out, depth + 1);
                write_json(out, item, s, depth + 1)?;
            }
            newline(out, depth);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            if s.sort_keys {
                keys.sort_by_key(|k| k.to_string());
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&s.item);
                }
                newline(out, depth + 1);
                let name = k.as_str().map(str::to_owned).unwrap_or_else(|| k.to_string());
                out.push_str(&serde_json::to_string(&name).expect("a string"));
                out.push_str(&s.key);
                write_json(out, &v.get_item(k)?, s, depth + 1)?;
            }
            newline(out, depth);
            out.push('}');
        }
        _ => out.push_str(&serde_json::to_string(&v.to_string()).expect("a string")),
    }
    Ok(())
}

/// Python's `repr` of a float: `1.0`, `0.1`, `1e+20`, `NaN`.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Python switches to exponent notation here, with a signed two-digit exponent.
        let s = format!("{f:e}");
        let (mantissa, exponent) = s.split_once('e').expect("exponent notation");
        let exponent: i32 = exponent.parse().expect("an integer exponent");
        return format!("{mantissa}e{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.abs());
    }
    let s = format!("{f:?}");
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

/// `strftime_now(format)`: the local time now, as Python's datetime.strftime.
fn strftime_now(format: String) -> Result<Value, Error> {
    let c_format = std::ffi::CString::new(format)
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "strftime_now: the format holds a NUL"))?;
    let mut buf = vec![0u8; 256];
    // SAFETY: `time` and `localtime_r` fill the zeroed `tm` we own;
    // `strftime` writes at most `buf.len()` bytes into `buf` and returns how
    // many, reading a NUL-terminated format.
    #[allow(unsafe_code)]
    let written = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        libc::strftime(buf.as_mut_ptr().cast(), buf.len(), c_format.as_ptr(), &tm)
    };
    buf.truncate(written);
    Ok(Value::from(String::from_utf8_lossy(&buf).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}\
        {% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}\
        {% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\\n' }}{% endfor %}\
        {% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    fn template(text: &str) -> ChatTemplate {
        ChatTemplate::from_source(text, "t.jinja".into(), vec![("eos_token".into(), "</s>".into())]).unwrap()
    }

    fn conversation() -> Vec<Value> {
        parse_messages(
            r#"[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
                {"role": "assistant", "content": "Bye!", "tool_calls": null}]"#,
        )
        .unwrap()
    }

    fn pieces(r: &Rendered) -> Vec<&str> {
        r.trained.iter().map(|s| &r.text[s.clone()]).collect()
    }

    #[test]
    fn generation_blocks_and_rendering_up_to_each_turn_find_the_same_turns() {
        let marked = template(CHATML);
        let r = marked.messages(&conversation(), TrainOn::Assistant).unwrap();
        assert!(r.text.starts_with("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi"), "{}", r.text);
        assert_eq!(pieces(&r), ["Hello!<|im_end|>", "Bye!<|im_end|>"]);
        let plain = CHATML.replace("{% generation %}", "").replace("{% endgeneration %}", "");
        let unmarked = template(&plain).messages(&conversation(), TrainOn::Assistant).unwrap();
        assert_eq!(unmarked.text, r.text);
        // Without markers the turn runs to the end of its rendering, newline included.
        assert_eq!(pieces(&unmarked), ["Hello!<|im_end|>\n", "Bye!<|im_end|>\n"]);
        let last = marked.messages(&conversation(), TrainOn::Completion).unwrap();
        assert_eq!(pieces(&last), ["Bye!<|im_end|>"]);
        let all = marked.messages(&conversation(), TrainOn::All).unwrap();
        assert_eq!(pieces(&all), [all.text.as_str()]);
    }

    #[test]
    fn python_idioms_of_real_templates_render() {
        let t = template(
            "{{ bos_token | default('') }}{% for m in messages %}{% if loop.index0 % 2 == 0 and m.role != 'user' %}\
             {{ raise_exception('roles must alternate') }}{% endif %}{{ m['content'].strip().upper() }}|\
             {% if m.content.startswith('H') %}H{% endif %}{% endfor %}{{ eos_token }}\
             {{ {'b': 1, 'a': [1.0, 'x', none, true]} | tojson }}{{ messages[1:] | length }}",
        );
        let ok =
            parse_messages(r#"[{"role": "user", "content": " hi "}, {"role": "assistant", "content": "Ho"}]"#).unwrap();
        assert_eq!(t.render(&ok, false).unwrap().text, "HI|HO|H</s>{\"b\": 1, \"a\": [1.0, \"x\", null, true]}1");
        let bad = parse_messages(r#"[{"role": "assistant", "content": "x"}]"#).unwrap();
        assert_eq!(t.render(&bad, false).unwrap_err(), RecordError::Template("roles must alternate".into()));
    }

    #[test]
    fn records_that_are_not_conversations_are_refused() {
        assert!(parse_messages("{}").unwrap_err().to_string().contains("not a list"));
        assert!(parse_messages("[1]").unwrap_err().to_string().contains("message 0 is not an object"));
        assert!(parse_messages(r#"[{"content": "x"}]"#).unwrap_err().to_string().contains("no string \"role\""));
        assert!(parse_messages("[{\"role\": \"user\", \"content\": \"\u{FDD0}\"}]")
            .unwrap_err()
            .to_string()
            .contains("U+FDD0"));
        assert_eq!(python_float(1e20), "1e+20");
        assert_eq!(python_float(0.5), "0.5");
        assert_eq!(python_float(3.0), "3.0");
        assert_eq!(python_float(1e-5), "1e-05");
    }
}
