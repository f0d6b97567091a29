//! AlterClientQuotas (KIP-546): quota values set and removed per entity, validated as Kafka
//! does, one result per entity, written as ClientQuota records.

use super::Controller;
use crate::error::ControllerError;
use crate::quota::{QuotaEntity, REQUEST_PERCENTAGE};
use crate::records::MetadataRecord;

/// One entity's changes: `(key, Some(value bits))` sets (an f64's bits, so operations stay
/// `Eq`), `(key, None)` removes.
pub type QuotaAlteration = (QuotaEntity, Vec<(String, Option<u64>)>);
/// One result per entity of the request, in request order.
pub type QuotaResults = Vec<Result<(), ControllerError>>;

impl Controller {
    /// Validates every entity's changes, then commits the valid ones together (unless
    /// `validate_only`).
    pub fn alter_client_quotas(
        &mut self,
        alterations: Vec<QuotaAlteration>,
        validate_only: bool,
    ) -> Result<QuotaResults, ControllerError> {
        let mut records = Vec::new();
        let results = alterations
            .into_iter()
            .map(|(entity, ops)| {
                let invalid = |reason: String| ControllerError::InvalidRequest { reason };
                if let Some(reason) = entity.invalid_reason() {
                    return Err(invalid(reason));
                }
                let mut keys: Vec<&str> = Vec::new();
                for (key, value) in &ops {
                    if !entity.valid_keys().contains(&key.as_str()) {
                        return Err(invalid(format!("'{key}' is not a quota of this entity")));
                    }
                    if keys.contains(&key.as_str()) {
                        return Err(invalid(format!("quota '{key}' appears twice")));
                    }
                    keys.push(key);
                    if let Some(v) = value.map(f64::from_bits) {
                        if !v.is_finite() || v <= 0.0 {
                            return Err(invalid(format!("quota '{key}' must be positive: {v}")));
                        }
                        if key == REQUEST_PERCENTAGE && v > 100.0 {
                            return Err(invalid(format!("{key} is at most 100: {v}")));
                        }
                    }
                }
                records.extend(
                    ops.into_iter()
                        .map(|(key, value)| MetadataRecord::ClientQuota {
                            entity: entity.clone(),
                            key,
                            value_bits: value,
                        }),
                );
                Ok(())
            })
            .collect();
        if !validate_only && !records.is_empty() {
            self.commit(records)?;
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::elr_tests::open;
    use crate::quota::*;

    #[test]
    fn quotas_are_validated_per_entity_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let alice = QuotaEntity::new(vec![(USER.into(), Some("alice".into()))]);
        let ip = QuotaEntity::new(vec![(IP.into(), None)]);
        {
            let mut c = open(dir.path(), &[1]);
            let results = c
                .alter_client_quotas(
                    vec![
                        (
                            alice.clone(),
                            vec![(PRODUCER_BYTE_RATE.into(), Some(1024f64.to_bits()))],
                        ),
                        (
                            ip.clone(),
                            vec![(PRODUCER_BYTE_RATE.into(), Some(1f64.to_bits()))],
                        ),
                        (
                            alice.clone(),
                            vec![(REQUEST_PERCENTAGE.into(), Some((-1f64).to_bits()))],
                        ),
                        (
                            ip.clone(),
                            vec![(CONNECTION_CREATION_RATE.into(), Some(5f64.to_bits()))],
                        ),
                    ],
                    false,
                )
                .unwrap();
            assert!(results[0].is_ok() && results[3].is_ok(), "{results:?}");
            assert!(matches!(
                results[1],
                Err(ControllerError::InvalidRequest { .. })
            ));
            assert!(matches!(
                results[2],
                Err(ControllerError::InvalidRequest { .. })
            ));
            // validate_only writes nothing.
            c.alter_client_quotas(
                vec![(
                    alice.clone(),
                    vec![(CONSUMER_BYTE_RATE.into(), Some(9f64.to_bits()))],
                )],
                true,
            )
            .unwrap();
        }
        let c = open(dir.path(), &[1]);
        let q = c.image();
        let q = q.client_quotas();
        assert_eq!(q.get(&alice, PRODUCER_BYTE_RATE), Some(1024.0));
        assert_eq!(q.get(&alice, CONSUMER_BYTE_RATE), None);
        assert_eq!(q.get(&ip, CONNECTION_CREATION_RATE), Some(5.0));
        assert_eq!(q.resolve(PRODUCER_BYTE_RATE, "alice", "any"), Some(1024.0));
    }
}
