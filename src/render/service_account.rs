//! ServiceAccount `{name}-vector`, created only when the operator owns the collectors' identity.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::meta;
use crate::model::Model;

pub fn render(m: &Model, owner: Option<&OwnerReference>) -> Option<ServiceAccount> {
    m.create_service_account.then(|| ServiceAccount {
        metadata: meta::namespaced(m, owner, m.service_account.clone(), "vector"),
        automount_service_account_token: Some(true),
        ..Default::default()
    })
}
