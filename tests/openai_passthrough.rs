//! The rest of the Anthropic API (Message Batches, Files) through the real gateway: to
//! the Anthropic-kind provider as it came, audited, file uploads by size.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn batches_and_file_uploads_pass_through_as_they_came_and_are_audited_by_size() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::json(
        200,
        r#"{"id":"msgbatch_1","type":"message_batch","processing_status":"in_progress"}"#,
    ));
    upstream.push(Reply::json(
        200,
        r#"{"id":"file_1","type":"file","size_bytes":70000}"#,
    ));
    let gateway = start_gateway(config_for(&upstream)).await;

    let batch = r#"{"requests":[{"custom_id":"a","params":{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}}]}"#;
    let response = client()
        .post(gateway.url("/v1/messages/batches?beta=true"))
        .header("anthropic-beta", "message-batches-2024-09-24")
        .header("content-type", "application/json")
        .body(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["id"], "msgbatch_1");

    let file: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(file.clone()).file_name("data.bin"),
    );
    let response = client()
        .post(gateway.url("/v1/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let sent = upstream.requests();
    assert_eq!(
        (sent[0].method.as_str(), sent[0].target.as_str()),
        ("POST", "/v1/messages/batches?beta=true")
    );
    assert_eq!(sent[0].body, batch.as_bytes());
    assert_eq!(
        sent[0].header("anthropic-beta"),
        Some("message-batches-2024-09-24")
    );
    assert_eq!(sent[1].target, "/v1/files");
    assert!(sent[1]
        .header("content-type")
        .unwrap()
        .starts_with("multipart/form-data; boundary="));
    assert!(
        sent[1]
            .body
            .windows(file.len())
            .any(|w| w == file.as_slice()),
        "the file's bytes intact"
    );

    let records = gateway.wait_audit("limit=2&bodies=true", 2).await;
    let upload = records
        .iter()
        .find(|r| {
            r["status"] == 200
                && r["request_body"]
                    .as_str()
                    .is_some_and(|b| b.contains("multipart"))
        })
        .expect("the upload's record");
    assert_eq!(upload["endpoint"], "passthrough");
    assert_eq!(
        upload["request_body"],
        format!(
            "[multipart body of {} bytes, not stored]",
            sent[1].body.len()
        )
    );
    assert!(upload["cost_usd"].is_null(), "not priced");
    let batch_record = records
        .iter()
        .find(|r| r["request_body"] == batch)
        .expect("the batch's record");
    assert_eq!(batch_record["ingress"], "anthropic");
}
