//! CreateAcls and DeleteAcls (KIP-140, KIP-290): ACL bindings written to and removed from the
//! metadata log, as Kafka's controller does for its StandardAuthorizer. A binding that already
//! exists is not written twice; each created binding gets a fresh id.

use uuid::Uuid;

use super::Controller;
use crate::acl::{AclBinding, AclFilter};
use crate::error::ControllerError;
use crate::records::MetadataRecord;

/// One result per binding of a CreateAcls request, in request order.
pub type CreateAclResults = Vec<Result<(), ControllerError>>;
/// One result per filter of a DeleteAcls request: the bindings it deleted.
pub type DeleteAclResults = Vec<Result<Vec<AclBinding>, ControllerError>>;

impl Controller {
    /// Writes every valid binding not already stored, in one commit.
    pub fn create_acls(
        &mut self,
        bindings: Vec<AclBinding>,
    ) -> Result<CreateAclResults, ControllerError> {
        let image = self.image();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(bindings.len());
        let mut new: Vec<AclBinding> = Vec::new();
        for binding in bindings {
            if let Some(reason) = binding.invalid_reason() {
                results.push(Err(ControllerError::InvalidRequest { reason }));
                continue;
            }
            let stored = image.acls().values().any(|b| b == &binding) || new.contains(&binding);
            if !stored {
                new.push(binding.clone());
                records.push(MetadataRecord::Acl {
                    id: Uuid::new_v4(),
                    binding,
                });
            }
            results.push(Ok(()));
        }
        if !records.is_empty() {
            self.commit(records)?;
        }
        Ok(results)
    }

    /// Removes every stored binding each filter matches, in one commit; a binding matched
    /// by several filters is reported under each (as Kafka does) and removed once.
    pub fn delete_acls(
        &mut self,
        filters: Vec<AclFilter>,
    ) -> Result<DeleteAclResults, ControllerError> {
        let image = self.image();
        let mut removed: Vec<Uuid> = Vec::new();
        let results = filters
            .iter()
            .map(|f| {
                let matched: Vec<(Uuid, AclBinding)> = image
                    .acls()
                    .iter()
                    .filter(|(_, b)| f.matches(b))
                    .map(|(id, b)| (*id, b.clone()))
                    .collect();
                for (id, _) in &matched {
                    if !removed.contains(id) {
                        removed.push(*id);
                    }
                }
                Ok(matched.into_iter().map(|(_, b)| b).collect())
            })
            .collect();
        if !removed.is_empty() {
            self.commit(
                removed
                    .into_iter()
                    .map(|id| MetadataRecord::RemoveAcl { id })
                    .collect(),
            )?;
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::*;
    use crate::controller::elr_tests::open;

    fn allow(principal: &str, name: &str, pattern_type: PatternType) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type,
            principal: principal.into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        }
    }

    #[test]
    fn acls_are_created_once_refused_when_invalid_and_deleted_by_filter() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(dir.path(), &[1]);
        let good = allow("User:alice", "orders", PatternType::Literal);
        let prefixed = allow("User:bob", "ord", PatternType::Prefixed);
        let bad = AclBinding {
            principal: "alice".into(),
            ..good.clone()
        };
        let results = c
            .create_acls(vec![good.clone(), bad, good.clone(), prefixed.clone()])
            .unwrap();
        assert!(results[0].is_ok() && results[2].is_ok() && results[3].is_ok());
        assert!(matches!(
            results[1],
            Err(ControllerError::InvalidRequest { .. })
        ));
        assert_eq!(c.image().acls().len(), 2, "the duplicate is stored once");
        // Again: nothing new is written.
        c.create_acls(vec![good.clone()]).unwrap();
        assert_eq!(c.image().acls().len(), 2);

        let matching_orders = AclFilter {
            resource_type: ResourceType::Topic,
            resource_name: Some("orders".into()),
            pattern_type: PatternType::Match,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        };
        let only_bob = AclFilter {
            principal: Some("User:bob".into()),
            resource_name: None,
            pattern_type: PatternType::Any,
            ..matching_orders.clone()
        };
        let results = c.delete_acls(vec![matching_orders, only_bob]).unwrap();
        let mut first = results[0].clone().unwrap();
        first.sort();
        let mut want = vec![good, prefixed.clone()];
        want.sort();
        assert_eq!(first, want);
        assert_eq!(results[1].clone().unwrap(), vec![prefixed]);
        assert!(c.image().acls().is_empty());
    }
}
