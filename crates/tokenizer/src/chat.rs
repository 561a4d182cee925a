//! Chat templates: the model's Jinja template (`tokenizer.chat_template`) rendered with minijinja in
//! the environment Hugging Face's `apply_chat_template` provides (trim_blocks, lstrip_blocks,
//! `raise_exception`, `strftime_now`, Python string methods via minijinja-contrib's pycompat,
//! `bos_token`/`eos_token`, `tools = none`), with ChatML as the fallback for models without one.
//!
//! To keep special-token text inside message contents literal, [`ChatTemplate::render_marked`]
//! renders with each content replaced by a marker (two private-use characters around the message
//! index, keeping the content's leading and trailing whitespace so `trim`/`.strip()` in the template
//! behave as on the real content), then swaps the markers for the trimmed contents and reports where
//! they landed. Templates that otherwise transform contents (slicing, `replace`) are rejected with
//! [`TokenizerError::TemplateAlteredContent`] rather than risk parsing user text as special tokens.

use std::ops::Range;

use minijinja::{Environment, Error, ErrorKind, Value, context};
use serde::{Deserialize, Serialize};

use crate::TokenizerError;

/// The template used when a model carries none: ChatML (`<|im_start|>role\ncontent<|im_end|>\n`).
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const TEMPLATE_NAME: &str = "chat_template";

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with the given role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// BOS and EOS token texts for the template's `bos_token` / `eos_token`.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpecialTexts {
    pub bos: String,
    pub eos: String,
}

/// A rendered template with the byte ranges of the message contents in it.
#[derive(Debug, Clone)]
pub(crate) struct MarkedRender {
    pub text: String,
    /// Sorted, non-overlapping content ranges in `text`.
    pub contents: Vec<Range<usize>>,
}

/// A compiled chat template.
#[derive(Clone)]
pub(crate) struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    is_fallback: bool,
}

impl ChatTemplate {
    /// Compiles `source`, or ChatML when `None`.
    pub(crate) fn new(source: Option<String>) -> Result<Self, TokenizerError> {
        let is_fallback = source.is_none();
        let source = source.unwrap_or_else(|| CHATML_TEMPLATE.to_string());
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, source.clone())
            .map_err(|source| TokenizerError::Template {
                stage: "parsing",
                source,
            })?;
        Ok(Self {
            env,
            source,
            is_fallback,
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn is_fallback(&self) -> bool {
        self.is_fallback
    }

    /// Renders the template for `messages`.
    pub(crate) fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        specials: &SpecialTexts,
    ) -> Result<String, TokenizerError> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|source| TokenizerError::Template {
                stage: "loading",
                source,
            })?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => specials.bos,
                eos_token => specials.eos,
                tools => Value::from(()),
                documents => Value::from(()),
            })
            .map_err(|source| TokenizerError::Template {
                stage: "rendering",
                source,
            })
    }

    /// Renders with contents swapped for markers, then restores them and reports their ranges.
    pub(crate) fn render_marked(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        specials: &SpecialTexts,
    ) -> Result<MarkedRender, TokenizerError> {
        let (open, close) = pick_markers(messages, &self.source);
        let mut cores = Vec::with_capacity(messages.len());
        let marked: Vec<ChatMessage> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let core = m.content.trim();
                cores.push(core);
                if core.is_empty() {
                    return m.clone();
                }
                let start = m.content.len() - m.content.trim_start().len();
                let end = start + core.len();
                let content = format!("{}{open}{i}{close}{}", &m.content[..start], &m.content[end..]);
                ChatMessage {
                    role: m.role.clone(),
                    content,
                }
            })
            .collect();
        let rendered = self.render(&marked, add_generation_prompt, specials)?;
        restore_contents(&rendered, open, close, &cores)
    }
}

/// Replaces each `open index close` marker in `rendered` by `cores[index]`.
fn restore_contents(rendered: &str, open: char, close: char, cores: &[&str]) -> Result<MarkedRender, TokenizerError> {
    let mut text = String::with_capacity(rendered.len());
    let mut contents = Vec::new();
    let mut rest = rendered;
    while let Some(at) = rest.find([open, close]) {
        text.push_str(&rest[..at]);
        let after = rest[at..]
            .strip_prefix(open)
            .ok_or(TokenizerError::TemplateAlteredContent)?;
        let (index, tail) = after.split_once(close).ok_or(TokenizerError::TemplateAlteredContent)?;
        let core = index
            .parse::<usize>()
            .ok()
            .and_then(|i| cores.get(i))
            .ok_or(TokenizerError::TemplateAlteredContent)?;
        contents.push(text.len()..text.len() + core.len());
        text.push_str(core);
        rest = tail;
    }
    text.push_str(rest);
    Ok(MarkedRender { text, contents })
}

/// Two private-use characters that appear in no content and not in the template.
fn pick_markers(messages: &[ChatMessage], template: &str) -> (char, char) {
    let used = |c: char| template.contains(c) || messages.iter().any(|m| m.content.contains(c));
    let mut candidates = (0xE000u32..=0xF8FF).filter_map(char::from_u32).filter(|&c| !used(c));
    // 6400 private-use characters: contents cannot use them all up short of megabytes of them.
    let open = candidates.next().unwrap_or('\u{E000}');
    let close = candidates.next().unwrap_or('\u{E001}');
    (open, close)
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// `strftime_now(format)`: the current UTC time formatted with the common strftime directives
/// (`%Y %y %m %d %e %B %b %A %a %H %M %S %j %%`); others are kept as written.
fn strftime_now(format: String) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    strftime(&format, secs)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Formats `unix_secs` (UTC) with a subset of strftime.
pub(crate) fn strftime(format: &str, unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs_of_day = unix_secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cumulative[(month - 1) as usize] + day + i64::from(leap && month > 2);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let month_name = MONTHS[(month - 1) as usize];

    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('e') => out.push_str(&format!("{day:>2}")),
            Some('B') => out.push_str(month_name),
            Some('b') => out.push_str(&month_name[..3]),
            Some('A') => out.push_str(WEEKDAYS[weekday]),
            Some('a') => out.push_str(&WEEKDAYS[weekday][..3]),
            Some('H') => out.push_str(&format!("{:02}", secs_of_day / 3600)),
            Some('M') => out.push_str(&format!("{:02}", secs_of_day / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", secs_of_day % 60)),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn strftime_formats_a_known_date() {
        // 2024-07-26 12:34:56 UTC, a Friday (the default date in Llama 3.1's template).
        let t = 1_721_997_296;
        assert_eq!(strftime("%d %b %Y", t), "26 Jul 2024");
        assert_eq!(
            strftime("%A %B %e, %H:%M:%S %j %%", t),
            "Friday July 26, 12:34:56 208 %"
        );
    }

    #[test]
    fn markers_keep_whitespace_so_trim_in_the_template_still_works() {
        let t = ChatTemplate::new(Some(
            "{% for m in messages %}[{{ m.content | trim }}]{% endfor %}".into(),
        ))
        .unwrap();
        let msgs = [ChatMessage::new("user", "  hi there \n")];
        let r = t.render_marked(&msgs, false, &SpecialTexts::default()).unwrap();
        assert_eq!(r.text, "[hi there]");
        assert_eq!(&r.text[r.contents[0].clone()], "hi there");
    }

    #[test]
    fn templates_that_slice_content_are_rejected() {
        let t = ChatTemplate::new(Some("{% for m in messages %}{{ m.content[1:] }}{% endfor %}".into())).unwrap();
        let msgs = [ChatMessage::new("user", "hello")];
        let err = t.render_marked(&msgs, false, &SpecialTexts::default()).unwrap_err();
        assert!(matches!(err, TokenizerError::TemplateAlteredContent), "{err}");
    }

    #[test]
    fn raise_exception_surfaces_as_a_template_error() {
        let t = ChatTemplate::new(Some("{{ raise_exception('no system role') }}".into())).unwrap();
        let err = t.render(&[], false, &SpecialTexts::default()).unwrap_err();
        assert!(err.to_string().contains("no system role"), "{err}");
    }

    #[test]
    fn namespace_tojson_and_strftime_now_are_available() {
        let t = ChatTemplate::new(Some(
            "{%- set ns = namespace(sys='') -%}\n{%- for m in messages -%}\n  {%- if m.role == 'system' -%}{%- set ns.sys = m.content | trim -%}{%- endif -%}\n{%- endfor -%}\n{{ ns.sys | tojson }} {{ strftime_now('%Y') | length }}{% if tools is not none %}!{% endif %}".into(),
        ))
        .unwrap();
        let msgs = [ChatMessage::new("system", " be nice ")];
        let out = t.render(&msgs, false, &SpecialTexts::default()).unwrap();
        assert_eq!(out, "\"be nice\" 4");
    }

    #[test]
    fn python_string_methods_work() {
        let t = ChatTemplate::new(Some(
            "{{ messages[0]['content'].strip().upper() }}{{ bos_token }}".into(),
        ))
        .unwrap();
        let specials = SpecialTexts {
            bos: "<s>".into(),
            eos: String::new(),
        };
        let out = t.render(&[ChatMessage::new("user", " ok ")], false, &specials).unwrap();
        assert_eq!(out, "OK<s>");
    }
}
