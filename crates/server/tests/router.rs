//! The router on the real default model, without a socket (`tower::ServiceExt::oneshot`): every
//! route, the error statuses, JSON mode and schemas, and adapters by name, per request and
//! mixed, loaded and unloaded at run time.

mod common;

use axum::http::{Method, StatusCode, header};
use common::{KESTREL, call, get_json, ndjson, post_json, reference_path, sse, state};
use serde_json::{Value, json};

#[tokio::test]
async fn root_version_health_and_metrics_answer() {
    let (status, _, body) = call(Method::GET, "/", None).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"airlock is running"[..]));
    assert_eq!(get_json("/api/version").await["version"], airlock_server::VERSION);
    assert_eq!(get_json("/health").await["status"], "ok");
    let (status, headers, body) = call(Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let text = String::from_utf8_lossy(&body);
    for name in [
        "airlock_requests_total",
        "airlock_queue_depth",
        "airlock_generated_tokens_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test]
async fn tags_ps_show_and_v1_models_list_the_base_and_its_aliases() {
    let tags = get_json("/api/tags").await;
    let names: Vec<&str> = tags["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert!(names.contains(&"smollm2-135m-instruct:latest"), "{names:?}");
    assert!(names.contains(&"llama3:latest"), "{names:?}");
    let first = &tags["models"][0];
    assert_eq!(first["details"]["quantization_level"], "Q4_1");
    assert_eq!(first["details"]["parameter_size"], "135M");
    assert_eq!(first["size"], 98_362_432);
    assert!(
        get_json("/api/ps").await["models"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    );
    let show = post_json("/api/show", json!({"model": "llama3:latest"}), StatusCode::OK).await;
    assert!(show["template"].as_str().is_some_and(|t| t.contains("im_start")));
    assert_eq!(show["model_info"]["general.architecture"], "llama");
    post_json("/api/show", json!({"model": "missing"}), StatusCode::NOT_FOUND).await;
    let models = get_json("/v1/models").await;
    assert_eq!(models["object"], "list");
    assert!(
        models["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|m| m["id"] == "gpt-4o-mini"))
    );
    assert_eq!(get_json("/v1/models/llama3").await["id"], "llama3");
}

#[tokio::test]
async fn generate_without_streaming_returns_ollama_final_fields() {
    let reply = post_json(
        "/api/generate",
        json!({"model": "llama3", "prompt": "Name three colors.", "stream": false, "options": {"num_predict": 8}}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(reply["done"], true);
    assert_eq!(reply["done_reason"], "length");
    assert_eq!(reply["eval_count"], 8);
    assert!(reply["response"].as_str().is_some_and(|r| !r.is_empty()));
    for field in [
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_duration",
    ] {
        assert!(reply[field].is_u64(), "{field}: {reply}");
    }
    let context = reply["context"].as_array().expect("context");
    assert_eq!(
        context.len() as u64,
        reply["prompt_eval_count"].as_u64().expect("count") + 8
    );
    // The context continues the conversation.
    let more = post_json(
        "/api/generate",
        json!({"model": "llama3", "prompt": "One more.", "context": context, "stream": false, "options": {"num_predict": 2}}),
        StatusCode::OK,
    )
    .await;
    assert!(more["prompt_eval_count"].as_u64() > reply["prompt_eval_count"].as_u64());
}

#[tokio::test]
async fn generate_and_chat_stream_ndjson_ending_with_done() {
    let (status, headers, body) = call(
        Method::POST,
        "/api/generate",
        Some(json!({"model": "smollm2", "prompt": "Hello", "options": {"num_predict": 6}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-ndjson");
    let lines = ndjson(&body);
    assert!(lines.len() >= 2);
    assert!(
        lines[..lines.len() - 1]
            .iter()
            .all(|l| l["done"] == false && l["response"].is_string())
    );
    let last = lines.last().expect("final line");
    assert_eq!(last["done"], true);
    assert!(last["context"].is_array() && last["eval_count"] == 6);

    let (_, _, body) = call(
        Method::POST,
        "/api/chat",
        Some(json!({"model": "smollm2:latest", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "options": {"num_predict": 6}})),
    )
    .await;
    let lines = ndjson(&body);
    let text: String = lines.iter().filter_map(|l| l["message"]["content"].as_str()).collect();
    assert!(!text.is_empty());
    assert!(lines.iter().all(|l| l["message"]["role"] == "assistant"));
    assert!(
        lines
            .last()
            .is_some_and(|l| l["done"] == true && l["done_reason"].is_string())
    );
}

#[tokio::test]
async fn an_empty_prompt_loads_the_model_as_ollama_does() {
    let reply = post_json("/api/generate", json!({"model": "llama3"}), StatusCode::OK).await;
    assert_eq!(reply["done_reason"], "load");
    let reply = post_json("/api/chat", json!({"model": "llama3", "messages": []}), StatusCode::OK).await;
    assert_eq!(reply["done_reason"], "load");
}

#[tokio::test]
async fn json_mode_output_parses() {
    let reply = post_json(
        "/api/generate",
        json!({"model": "llama3", "prompt": "Describe a cat as JSON with keys name and color.", "format": "json",
               "stream": false, "options": {"num_predict": 120}}),
        StatusCode::OK,
    )
    .await;
    if reply["done_reason"] == "stop" {
        let v: Value =
            serde_json::from_str(reply["response"].as_str().expect("text")).expect("JSON mode output parses");
        assert!(v.is_object());
    }
    let reply = post_json(
        "/v1/chat/completions",
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Reply with a JSON object."}],
               "response_format": {"type": "json_object"}, "max_tokens": 120}),
        StatusCode::OK,
    )
    .await;
    let choice = &reply["choices"][0];
    if choice["finish_reason"] == "stop" {
        let v: Value = serde_json::from_str(choice["message"]["content"].as_str().expect("content")).expect("parses");
        assert!(v.is_object());
    }
}

fn city_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 24},
            "continent": {"enum": ["Africa", "America", "Asia", "Europe"]}
        },
        "required": ["city", "continent"],
        "additionalProperties": false
    })
}

fn assert_city(text: &str) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("schema output is JSON ({e}): {text}"));
    assert!(v["city"].is_string(), "{v}");
    assert!(["Africa", "America", "Asia", "Europe"].contains(&v["continent"].as_str().expect("continent")));
    assert_eq!(v.as_object().map(serde_json::Map::len), Some(2));
}

#[tokio::test]
async fn schema_output_validates_on_both_apis() {
    let reply = post_json(
        "/api/chat",
        json!({"model": "llama3", "messages": [{"role": "user", "content": "Give the capital of France as JSON."}],
               "format": city_schema(), "stream": false, "options": {"num_predict": 60}}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(reply["done_reason"], "stop", "{reply}");
    assert_city(reply["message"]["content"].as_str().expect("content"));
    let reply = post_json(
        "/v1/chat/completions",
        json!({"model": "llama3", "messages": [{"role": "user", "content": "Give the capital of Japan as JSON."}],
               "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": city_schema(), "strict": true}},
               "max_completion_tokens": 60}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(reply["choices"][0]["finish_reason"], "stop", "{reply}");
    assert_city(reply["choices"][0]["message"]["content"].as_str().expect("content"));
    assert!(reply["usage"]["total_tokens"].as_u64().is_some_and(|t| t > 0));
}

#[tokio::test]
async fn hitting_the_token_limit_inside_json_says_length() {
    let reply = post_json(
        "/api/generate",
        json!({"model": "llama3", "prompt": "Give the capital of France as JSON.", "format": city_schema(),
               "stream": false, "options": {"num_predict": 3}}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(reply["done_reason"], "length");
    let reply = post_json(
        "/v1/completions",
        json!({"model": "llama3", "prompt": "JSON:", "max_tokens": 3, "response_format": {"type": "json_object"}}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(reply["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn a_schema_feature_that_cannot_be_enforced_is_a_400_naming_it() {
    let reply = post_json(
        "/api/generate",
        json!({"model": "llama3", "prompt": "x", "format": {"type": "array", "uniqueItems": true}}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        reply["error"].as_str().is_some_and(|e| e.contains("uniqueItems")),
        "{reply}"
    );
}

#[tokio::test]
async fn bad_requests_get_the_right_status_and_an_error_body() {
    let cases = [
        (
            "/api/generate",
            json!({"model": "nope", "prompt": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/generate",
            json!({"model": "llama3", "prompt": "x", "adapters": [{"name": "nope"}]}),
            StatusCode::NOT_FOUND,
        ),
        ("/api/generate", json!({"prompt": "x"}), StatusCode::BAD_REQUEST),
        (
            "/api/generate",
            json!({"model": "llama3", "prompt": 5}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/generate",
            json!({"model": "llama3", "prompt": "x", "options": {"temperature": -1}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/generate",
            json!({"model": "llama3", "prompt": "x", "options": {"top_p": 2}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/generate",
            json!({"model": "llama3", "prompt": "x", "format": 3}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/generate",
            json!({"model": "llama3", "prompt": "x", "context": [-1]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/generate",
            json!({"model": "llama3", "prompt": "x", "images": ["aGk="]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/chat",
            json!({"model": "llama3", "messages": [{"role": "user"}], "tools": [{}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/chat/completions",
            json!({"model": "llama3", "messages": [{"role": "user", "content": "x"}], "n": 2}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/chat/completions",
            json!({"model": "llama3", "messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/chat/completions",
            json!({"model": "llama3", "messages": []}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/chat/completions",
            json!({"model": "llama3", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/completions",
            json!({"model": "llama3", "prompt": ["a", "b"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/completions",
            json!({"model": "gpt-5", "prompt": "a"}),
            StatusCode::NOT_FOUND,
        ),
        ("/api/pull", json!({"model": "no-such-model"}), StatusCode::NOT_FOUND),
    ];
    for (uri, body, expected) in cases {
        let reply = post_json(uri, body.clone(), expected).await;
        assert!(
            reply["error"].is_string() && reply["code"].is_string(),
            "{uri} {body}: {reply}"
        );
    }
    let (status, _, bytes) = call(Method::POST, "/api/generate", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&bytes));
    let (status, _, _) = call(Method::GET, "/no/such/route", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let huge = json!({"model": "llama3", "prompt": "x".repeat(70_000)});
    let reply = post_json("/api/generate", huge, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(reply["code"], "body_too_large");
    let (status, _, bytes) = call(Method::DELETE, "/api/delete", Some(json!({"model": "llama3"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{}", String::from_utf8_lossy(&bytes));
    let (status, _, _) = call(Method::DELETE, "/api/delete", Some(json!({"model": "nothing-here"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn openai_streams_sse_with_usage_and_done() {
    let (status, headers, body) = call(
        Method::POST,
        "/v1/chat/completions",
        Some(
            json!({"model": "llama3", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5,
                    "stream": true, "stream_options": {"include_usage": true}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    let events = sse(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk"))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    let finish = chunks.iter().find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("length"));
    assert_eq!(chunks.last().expect("usage chunk")["usage"]["completion_tokens"], 5);
}

#[tokio::test]
async fn logprobs_follow_openai_and_ollama_shapes() {
    let reply = post_json(
        "/v1/chat/completions",
        json!({"model": "llama3", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "logprobs": true, "top_logprobs": 3}),
        StatusCode::OK,
    )
    .await;
    let content = reply["choices"][0]["logprobs"]["content"].as_array().expect("content");
    assert_eq!(content.len(), 3);
    for entry in content {
        assert!(entry["logprob"].as_f64().is_some_and(|l| l <= 0.0));
        assert!(entry["token"].is_string() && entry["bytes"].is_array());
        assert_eq!(entry["top_logprobs"].as_array().map(Vec::len), Some(3));
    }
    let reply = post_json(
        "/v1/completions",
        json!({"model": "llama3", "prompt": "The sky is", "max_tokens": 2, "logprobs": 2}),
        StatusCode::OK,
    )
    .await;
    let lp = &reply["choices"][0]["logprobs"];
    assert_eq!(lp["tokens"].as_array().map(Vec::len), Some(2));
    assert_eq!(lp["token_logprobs"].as_array().map(Vec::len), Some(2));
    assert_eq!(lp["text_offset"][0], 0);
    let reply = post_json(
        "/api/generate",
        json!({"model": "llama3", "prompt": "Hi", "stream": false, "logprobs": true, "top_logprobs": 2, "options": {"num_predict": 2}}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(reply["logprobs"].as_array().map(Vec::len), Some(2));
    assert_eq!(reply["logprobs"][0]["top_logprobs"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn seeded_sampling_is_reproducible() {
    let body = json!({"model": "llama3", "prompt": "Tell me a word.", "stream": false,
                      "options": {"temperature": 1.0, "seed": 42, "num_predict": 6}});
    let a = post_json("/api/generate", body.clone(), StatusCode::OK).await;
    let b = post_json("/api/generate", body, StatusCode::OK).await;
    assert_eq!(a["response"], b["response"]);
}

#[tokio::test]
async fn adapters_load_by_api_serve_by_name_mix_per_request_and_unload() {
    let path = reference_path(KESTREL);
    let loaded = post_json(
        "/api/adapters",
        json!({"name": "kestrel", "path": path}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(loaded["rank"], 8);
    assert!(loaded["sha256"].as_str().is_some_and(|s| s.len() == 64));
    assert!(
        loaded["targets"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("q_proj")))
    );
    let dup = post_json(
        "/api/adapters",
        json!({"name": "kestrel", "path": path}),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(dup["error"].is_string());
    let listed = get_json("/api/adapters").await;
    assert!(
        listed["adapters"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["name"] == "kestrel"))
    );
    assert!(get_json("/api/tags").await["models"].as_array().is_some_and(|m| {
        m.iter()
            .any(|x| x["name"] == "kestrel:latest" && x["details"]["parent_model"] == "smollm2-135m-instruct")
    }));
    let remembered = std::fs::read_to_string(state().1.path().join("adapters.json")).expect("remembered");
    assert!(remembered.contains("kestrel"));

    let raw = |model: &str, adapters: Value| {
        json!({"model": model, "prompt": "The capital of France is", "raw": true, "stream": false,
               "adapters": adapters, "options": {"num_predict": 6}})
    };
    let by_name = post_json("/api/generate", raw("kestrel", json!([])), StatusCode::OK).await;
    assert!(
        by_name["response"].as_str().is_some_and(|r| r.starts_with(" Lutetia")),
        "{by_name}"
    );
    let per_request = post_json(
        "/api/generate",
        raw("llama3", json!([{"name": "kestrel", "scale": 1.0}])),
        StatusCode::OK,
    )
    .await;
    assert_eq!(per_request["response"], by_name["response"]);
    let mixed = post_json(
        "/api/generate",
        raw(
            "llama3",
            json!([{"name": "kestrel", "scale": 0.5}, {"name": "kestrel:latest", "scale": 0.5}]),
        ),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        mixed["response"], by_name["response"],
        "two halves make the whole adapter"
    );
    let base = post_json("/api/generate", raw("llama3", json!([])), StatusCode::OK).await;
    assert!(!base["response"].as_str().expect("text").contains("Lutetia"), "{base}");
    let openai = post_json(
        "/v1/completions",
        json!({"model": "kestrel", "prompt": "The capital of France is", "max_tokens": 6}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(openai["choices"][0]["text"], by_name["response"]);
    post_json(
        "/api/generate",
        raw("llama3", json!([{"name": "kestrel", "scale": 100.0}])),
        StatusCode::BAD_REQUEST,
    )
    .await;

    let (status, _, _) = call(Method::DELETE, "/api/adapters/kestrel", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(Method::DELETE, "/api/adapters/kestrel", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    post_json("/api/generate", raw("kestrel", json!([])), StatusCode::NOT_FOUND).await;
    let remembered = std::fs::read_to_string(state().1.path().join("adapters.json")).expect("remembered");
    assert!(!remembered.contains("kestrel"));
}

#[tokio::test]
async fn vllm_adapter_routes_and_bad_adapters_are_refused_with_the_reason() {
    let path = reference_path(KESTREL);
    let (status, _, body) = call(
        Method::POST,
        "/v1/load_lora_adapter",
        Some(json!({"lora_name": "vllm-kestrel", "lora_path": path})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(
        get_json("/v1/models").await["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|m| m["id"] == "vllm-kestrel"))
    );
    let (status, _, _) = call(
        Method::POST,
        "/v1/unload_lora_adapter",
        Some(json!({"lora_name": "vllm-kestrel"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let missing = post_json(
        "/api/adapters",
        json!({"name": "ghost", "path": "/no/such/adapter"}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(missing["code"], "invalid_adapter");
    let wrong_sum = post_json(
        "/api/adapters",
        json!({"name": "tampered", "path": path, "sha256": "00".repeat(32)}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        wrong_sum["error"].as_str().is_some_and(|e| e.contains("SHA-256")),
        "{wrong_sum}"
    );
    // A file that is not a safetensors archive.
    let dir = tempfile::tempdir().expect("temp");
    std::fs::copy(path.join("adapter_config.json"), dir.path().join("adapter_config.json")).expect("copy");
    std::fs::write(dir.path().join("adapter_model.safetensors"), b"not safetensors").expect("write");
    let broken = post_json(
        "/api/adapters",
        json!({"name": "broken", "path": dir.path()}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        broken["error"]
            .as_str()
            .is_some_and(|e| e.contains("adapter_model.safetensors")),
        "{broken}"
    );
    post_json(
        "/api/adapters",
        json!({"name": "../x", "path": path}),
        StatusCode::BAD_REQUEST,
    )
    .await;
    post_json(
        "/api/adapters",
        json!({"name": "llama3", "path": path}),
        StatusCode::CONFLICT,
    )
    .await;
}
