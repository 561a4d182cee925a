//! Structured decoding: JSON mode, JSON Schema and regex constraints turned into a per-step token
//! mask, using llguidance (<https://github.com/guidance-ai/llguidance>: an Earley parser over a
//! derivative-based lexer, walked against a token trie).
//!
//! ```text
//! ConstraintCompiler::new(&tokenizer)      once per model (token trie over the byte table)
//!   .compile(&Constraint::JsonSchema(s))   once per request -> Matcher
//! loop { matcher.mask_logits(&mut logits)?; sample; matcher.consume(token)?; }
//! ```
//!
//! # Design decisions
//!
//! * **Unsupported means an error.** llguidance's lenient mode (drop keywords it cannot enforce) is
//!   off, and a schema may not carry llguidance's own `x-guidance` options (which could turn it
//!   back on): a keyword such as `uniqueItems` or an unknown `format` is
//!   [`ConstrainError::Unsupported`] naming it, which the server answers with 400. Output is never
//!   silently less constrained than asked. Keywords JSON Schema itself does not define are
//!   annotations and are ignored, as the specification says.
//! * **Whitespace is bounded.** No whitespace between JSON tokens except at most one space after
//!   `,` and `:`, so both `{"a":1,"b":2}` and `{"a": 1, "b": 2}` are allowed but a model cannot
//!   loop on blanks or newlines. Whitespace inside strings is content and is not limited.
//! * **Special tokens are never content.** Control tokens and end-of-generation tokens are marked
//!   special in the trie, so `<|im_end|>` cannot appear inside a JSON string; the
//!   end-of-generation tokens (EOS and e.g. `<|im_end|>`) are allowed exactly when the output is
//!   complete.
//! * **Only local `$ref`s.** llguidance is built without its `referencing` feature: `#/$defs/...`
//!   (what Pydantic and OpenAI emit) resolves, remote references are an error. Nothing is fetched.
//! * **No fast-forward tokens.** Every token goes through the sampler; the mask is the only thing
//!   the constraint contributes, so the tokenizer used for llguidance's forcing can be greedy.

mod compile;
mod error;
mod matcher;

pub use compile::{Constraint, ConstraintCompiler};
pub use error::ConstrainError;
pub use matcher::{Matcher, TokenSet};
