//! Files generated from the code must be exactly what the code prints: the CRD (crds/ and the Helm chart's copy,
//! `podtask crd`) and the chart's RBAC rules (`podtask rbac`). deploy/sync-generated.sh rewrites them all.

use std::path::Path;

fn check(path: &str, generated: &str) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let on_disk = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(on_disk == generated, "{path} is out of date with the code: run deploy/sync-generated.sh");
}

#[test]
fn crds_dir_matches_the_code() {
    check("crds/podtasks.podtask.dev.yaml", &podtask::crd::definition_yaml());
}

#[test]
fn helm_chart_crd_matches_the_code() {
    check("deploy/helm/podtask/crds/podtasks.podtask.dev.yaml", &podtask::crd::definition_yaml());
}

#[test]
fn helm_chart_rbac_rules_match_the_code() {
    check("deploy/helm/podtask/files/work-rules.yaml", &podtask::rbac::yaml(podtask::rbac::WORK));
    check("deploy/helm/podtask/files/lease-rules.yaml", &podtask::rbac::yaml(podtask::rbac::LEASE));
}

#[test]
fn crd_stays_small_enough_for_client_side_apply() {
    // kubectl apply (client-side) keeps the whole object in a 256 KiB annotation.
    let json = serde_json::to_string(&podtask::crd::definition()).unwrap();
    assert!(json.len() < 200 * 1024, "CRD is {} bytes of JSON", json.len());
}

#[test]
fn crd_names_columns_and_subresources_follow_the_contract() {
    let crd = podtask::crd::definition();
    assert_eq!(crd.metadata.name.as_deref(), Some("podtasks.podtask.dev"));
    assert_eq!(crd.spec.names.short_names.as_deref(), Some(&["pt".to_owned()][..]));
    assert_eq!(crd.spec.scope, "Namespaced");
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
    let columns: Vec<&str> = v.additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
    assert_eq!(columns, ["Phase", "Attempt", "Reason", "Deadline", "Age"]);
}
