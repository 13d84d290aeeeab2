//! `/openapi.json` is generated from the handlers and describes routes that exist.

use castellan_e2e::node::TestNode;
use serde_json::Value;

#[tokio::test]
async fn the_openapi_document_describes_only_routed_operations() {
    let node = TestNode::embedded().await;
    let acme = node.bootstrap("Acme", "root@acme.test").await;
    let doc: Value = node
        .http
        .get(node.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["name"],
        "x-api-key"
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} documents its answers"
            );
            let concrete = path.replace("{id}", "000000000000000000000000");
            let req = node
                .http
                .request(method.to_uppercase().parse().unwrap(), node.url(&concrete));
            let r = req
                .header("x-api-key", &acme.api_key)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                !(status == 404 && body["message"] == "route not found") && status != 405,
                "{method} {path} is documented but not routed ({status})"
            );
        }
    }
    assert!(operations >= 38, "operations documented: {operations}");
}
