//! Signed-up users on DynamoDB: `IDENTITY#<sub>` / `IDENTITY` names the shop user an
//! identity provider's subject is. The first time a subject is seen it gets the next
//! user id of the process's block of the `users` counter ([`super::counters`]), written
//! in one transaction with an empty profile, so
//! a subject is never two users and a user never two subjects' — however often
//! Cognito retries its trigger.

use anyhow::anyhow;

use super::ledger::ledger_row;
use super::transaction::Transaction;
use super::{get_u64, keys, n, s, DbError, DynamoStore, Item};
use crate::balance::{EntryKind, LedgerEntry};
use crate::clock::rfc3339;
use crate::identity::{SignUpError, UserRegistry};
use crate::ids::{EntryId, UserId};
use crate::money::Money;

/// How many taken user numbers (seeded users) a sign-up skips before giving up.
const SKIPS: usize = 20;

/// The items of registering a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignUpItem {
    Identity,
    Profile,
}

/// A new user's items: the profile with its opening `balance`, and, when it is not
/// zero, that balance as ledger entry 1 (a CHARGE), so a user obeys the ledger
/// invariant from the start. Sign-up makes them with a zero balance; the demo seeding
/// with the balances it is given.
pub fn user_items(user: UserId, balance: Money, at: time::OffsetDateTime) -> Vec<Item> {
    let mut profile = keys::profile(user).item();
    profile.insert("userId".to_owned(), n(user));
    profile.insert("balance".to_owned(), n(balance));
    profile.insert("createdAt".to_owned(), s(rfc3339(at)));
    if balance == Money::ZERO {
        profile.insert("seq".to_owned(), n(0));
        return vec![profile];
    }
    profile.insert("seq".to_owned(), n(1));
    let opening = LedgerEntry {
        id: EntryId::generate(),
        seq: 1,
        kind: EntryKind::Charge,
        amount: balance,
        balance_after: balance,
        order: None,
        created_at: at,
    };
    vec![profile, ledger_row(user, &opening)]
}

impl From<DbError> for SignUpError {
    fn from(err: DbError) -> SignUpError {
        match err {
            DbError::Unavailable(e) => SignUpError::Unavailable(e),
            DbError::Other(e) => SignUpError::Unexpected(e),
        }
    }
}

impl UserRegistry for DynamoStore {
    async fn user_for(&self, subject: &str, now: time::OffsetDateTime) -> Result<UserId, SignUpError> {
        if let Some(user) = self.registered(subject).await? {
            return Ok(user);
        }
        for _ in 0..SKIPS {
            let number = self.next_user_id().await?;
            let user = UserId::new(number).map_err(|e| anyhow!("user id {number}: {e}"))?;
            let mut identity = keys::identity(subject).item();
            identity.insert("userId".to_owned(), n(user));
            identity.insert("subject".to_owned(), s(subject));
            identity.insert("createdAt".to_owned(), s(crate::clock::rfc3339(now)));
            let mut transaction = Transaction::new(format!("register subject {subject} as user {user}"));
            transaction.put(SignUpItem::Identity, self.new_item(identity)?);
            for profile in user_items(user, Money::ZERO, now) {
                transaction.put(SignUpItem::Profile, self.new_item(profile)?);
            }
            match self.transact(&transaction).await? {
                Ok(()) => {
                    tracing::info!(%user, subject, "signed up");
                    return Ok(user);
                }
                // Registered a moment ago by another call for the same subject.
                Err(refusal) if refusal.failed(SignUpItem::Identity) => {
                    return self
                        .registered(subject)
                        .await?
                        .ok_or_else(|| SignUpError::Unexpected(anyhow!("subject {subject} vanished")));
                }
                // A seeded user holds this number: the counter was raised past the
                // seeding since this block was reserved, so take a new block.
                Err(_) => self.drop_user_ids().await,
            }
        }
        Err(SignUpError::Unexpected(anyhow!("{SKIPS} user ids in a row were taken; raise the users counter")))
    }
}

impl DynamoStore {
    async fn registered(&self, subject: &str) -> Result<Option<UserId>, DbError> {
        let item = self.get(&keys::identity(subject), || format!("look up subject {subject}")).await?;
        let Some(item) = item else { return Ok(None) };
        let number = get_u64(&item, "userId").map_err(DbError::Other)?;
        UserId::new(number).map(Some).map_err(|e| DbError::Other(anyhow!("user id {number} of {subject}: {e}")))
    }
}
