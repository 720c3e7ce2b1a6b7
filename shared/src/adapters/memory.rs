//! The in-memory store, for unit and handler tests only: every port behind one mutex,
//! keeping the same rules as the DynamoDB adapters (bounds, one ledger entry per
//! change, exact coupons, all-or-nothing payment, idempotency keys). The integration
//! tests hold the DynamoDB adapters to the same behaviour on the real local stack.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use time::{Date, OffsetDateTime};

use crate::balance::{
    cursor_after, cursor_seq, Applied, BalanceChange, BalanceError, BalanceHistory, BalanceLedger, BalanceReader,
    BalanceSeen, EntryKind, LedgerEntry,
};
use crate::catalog::{
    CatalogAdmin, CatalogError, Keyed, NewProduct, Product, ProductCatalog, ProductChange, MAX_STOCK,
};
use crate::coupons::{
    Coupon, CouponAdmin, CouponError, CouponIssuer, CouponReader, IssuedCoupon, NewCoupon, UserCoupons,
};
use crate::identity::{SignUpError, UserRegistry};
use crate::ids::{CouponId, EntryId, IdempotencyKey, OrderId, PaymentId, ProductId, UserId};
use crate::money::Money;
use crate::orders::{
    self, Canceller, Order, OrderCanceller, OrderError, OrderPayer, OrderStatus, OrderStore, Paid, Payment,
    PaymentFailure, Placed, KEPT_FAILURES,
};
use crate::pagination::{Page, PageRequest};
use crate::top::{SalesReader, TopError};

#[derive(Debug, Default)]
struct Account {
    balance: Money,
    entries: Vec<LedgerEntry>,
}

/// What a user's idempotency key committed.
#[derive(Debug, Clone)]
enum UserKeyed {
    Entry(usize),
    Order(OrderId),
    Payment(PaymentId),
}

#[derive(Debug, Default)]
struct World {
    accounts: HashMap<UserId, Account>,
    products: BTreeMap<ProductId, Product>,
    coupons: HashMap<CouponId, Coupon>,
    copies: BTreeMap<(UserId, CouponId), IssuedCoupon>,
    orders: HashMap<OrderId, Order>,
    payments: HashMap<PaymentId, Payment>,
    sales: HashMap<(Date, ProductId), u64>,
    keys: HashMap<(UserId, String), (String, UserKeyed)>,
    operator_keys: HashMap<String, (String, OperatorKeyed)>,
    subjects: HashMap<String, UserId>,
}

/// What an operator's idempotency key committed.
#[derive(Debug, Clone, Copy)]
enum OperatorKeyed {
    Product(ProductId),
    Coupon(CouponId),
    Cancel(OrderId),
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    world: Mutex<World>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Adds a user whose opening balance is entry 1, as seeding does.
    pub fn add_user(&self, user: UserId, balance: Money) {
        let mut account = Account { balance, ..Account::default() };
        if balance > Money::ZERO {
            account.entries.push(LedgerEntry {
                id: EntryId::generate(),
                seq: 1,
                kind: EntryKind::Charge,
                amount: balance,
                balance_after: balance,
                order: None,
                created_at: OffsetDateTime::UNIX_EPOCH,
            });
        }
        self.lock().accounts.insert(user, account);
    }

    pub fn add_product(&self, product: Product) {
        self.lock().products.insert(product.product_id, product);
    }

    pub fn add_coupon(&self, coupon: Coupon) {
        self.lock().coupons.insert(coupon.id, coupon);
    }

    /// A product's stock now.
    pub fn stock(&self, product: ProductId) -> Option<u64> {
        self.lock().products.get(&product).map(|p| p.stock)
    }

    /// The quantity of a product counted as sold on a day.
    pub fn sold(&self, day: Date, product: ProductId) -> u64 {
        self.lock().sales.get(&(day, product)).copied().unwrap_or(0)
    }

    /// A user's copy of a coupon, as stored.
    pub fn copy(&self, user: UserId, coupon: CouponId) -> Option<IssuedCoupon> {
        self.lock().copies.get(&(user, coupon)).cloned()
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The first use of a key, or what it committed; `Err` when the request differs.
fn keyed<'a>(
    world: &'a World,
    user: UserId,
    key: Option<&IdempotencyKey>,
    fingerprint: &str,
) -> Result<Option<&'a UserKeyed>, ()> {
    let Some(key) = key else { return Ok(None) };
    match world.keys.get(&(user, key.as_str().to_owned())) {
        None => Ok(None),
        Some((stored, _)) if stored != fingerprint => Err(()),
        Some((_, keyed)) => Ok(Some(keyed)),
    }
}

impl World {
    /// Appends a ledger entry; the caller has checked the bounds.
    fn post(
        &mut self,
        user: UserId,
        id: EntryId,
        (kind, order): (EntryKind, Option<OrderId>),
        amount: Money,
        at: OffsetDateTime,
    ) -> LedgerEntry {
        let account = self.accounts.get_mut(&user).expect("the caller checked the user");
        let balance_after = if kind.is_credit() {
            account.balance.checked_add(amount).expect("the caller checked the bound")
        } else {
            account.balance.checked_sub(amount).expect("the caller checked the balance")
        };
        let entry = LedgerEntry {
            id,
            seq: account.entries.last().map_or(1, |e| e.seq + 1),
            kind,
            amount,
            balance_after,
            order,
            created_at: at,
        };
        account.balance = balance_after;
        account.entries.push(entry.clone());
        entry
    }
}

impl BalanceReader for MemoryStore {
    async fn balance(&self, user: UserId) -> Result<Money, BalanceError> {
        self.lock().accounts.get(&user).map(|a| a.balance).ok_or(BalanceError::UnknownUser(user))
    }
}

impl BalanceLedger for MemoryStore {
    async fn apply(&self, change: BalanceChange) -> Result<Applied, BalanceError> {
        let mut world = self.lock();
        let account = world.accounts.get(&change.user).ok_or(BalanceError::UnknownUser(change.user))?;
        // An operator's credit keeps its key among the operators', apart from the customer's.
        let key = match (&change.idempotency_key, change.kind) {
            (Some(key), EntryKind::Credit) => IdempotencyKey::parse(&format!("operators/{}", key.as_str())).ok(),
            (key, _) => key.clone(),
        };
        match keyed(&world, change.user, key.as_ref(), &change.fingerprint()) {
            Err(()) => return Err(BalanceError::IdempotencyKeyReused),
            Ok(Some(UserKeyed::Entry(index))) => {
                return Ok(Applied { entry: account.entries[*index].clone(), replayed: true })
            }
            Ok(Some(_)) => return Err(BalanceError::IdempotencyKeyReused),
            Ok(None) => {}
        }
        let amount = change.amount.money();
        if change.kind.is_credit() {
            account.balance.checked_add(amount).map_err(|_| BalanceError::BalanceLimitExceeded)?;
        } else {
            account.balance.checked_sub(amount).map_err(|_| BalanceError::InsufficientBalance)?;
        }
        let index = account.entries.len();
        let entry = world.post(change.user, change.id, (change.kind, change.order), amount, change.at);
        if let Some(key) = &key {
            world.keys.insert((change.user, key.as_str().to_owned()), (change.fingerprint(), UserKeyed::Entry(index)));
        }
        Ok(Applied { entry, replayed: false })
    }
}

impl BalanceHistory for MemoryStore {
    async fn history(
        &self,
        user: UserId,
        page: PageRequest,
        _now: OffsetDateTime,
    ) -> Result<Page<LedgerEntry>, BalanceError> {
        let before = match &page.cursor {
            None => u64::MAX,
            Some(cursor) => cursor_seq(cursor).ok_or(BalanceError::BadCursor)?,
        };
        let world = self.lock();
        let account = world.accounts.get(&user).ok_or(BalanceError::UnknownUser(user))?;
        let items: Vec<LedgerEntry> =
            account.entries.iter().rev().filter(|e| e.seq < before).take(page.limit as usize + 1).cloned().collect();
        Ok(Page::from_lookahead(items, page.limit, |e| cursor_after(e.seq)))
    }
}

/// Cuts a list fetched one past the limit into a page.
impl ProductCatalog for MemoryStore {
    async fn product(&self, id: ProductId) -> Result<Product, CatalogError> {
        self.lock().products.get(&id).cloned().ok_or(CatalogError::UnknownProduct(id))
    }

    async fn products(&self, page: PageRequest) -> Result<Page<Product>, CatalogError> {
        let after = match &page.cursor {
            None => None,
            Some(cursor) => Some(crate::catalog::cursor_product(cursor).ok_or(CatalogError::BadCursor)?),
        };
        let world = self.lock();
        let items: Vec<Product> = world
            .products
            .values()
            .filter(|p| after.is_none_or(|a| p.product_id > a))
            .take(page.limit as usize + 1)
            .cloned()
            .collect();
        Ok(Page::from_lookahead(items, page.limit, |p| crate::catalog::cursor_after(p.product_id)))
    }
}

impl CouponReader for MemoryStore {
    async fn coupon(&self, id: CouponId) -> Result<Coupon, CouponError> {
        self.lock().coupons.get(&id).cloned().ok_or(CouponError::UnknownCoupon(id))
    }
}

impl CouponIssuer for MemoryStore {
    async fn terms(&self, id: CouponId) -> Result<Coupon, CouponError> {
        self.coupon(id).await
    }

    async fn issue(&self, id: CouponId, user: UserId, now: OffsetDateTime) -> Result<IssuedCoupon, CouponError> {
        let mut world = self.lock();
        let world = &mut *world;
        let coupon = world.coupons.get_mut(&id).ok_or(CouponError::UnknownCoupon(id))?;
        if !world.accounts.contains_key(&user) {
            return Err(CouponError::UnknownUser(user));
        }
        if world.copies.contains_key(&(user, id)) {
            return Err(CouponError::AlreadyIssued(id, user));
        }
        if coupon.has_ended(now) {
            return Err(CouponError::Expired(id));
        }
        if coupon.issued >= coupon.total {
            return Err(CouponError::SoldOut(id));
        }
        coupon.issued += 1;
        let copy = IssuedCoupon {
            coupon_id: id,
            user_id: user,
            name: coupon.name.clone(),
            discount: coupon.discount,
            issued_at: now,
            expires_at: coupon.ends_at,
            used_at: None,
        };
        world.copies.insert((user, id), copy.clone());
        Ok(copy)
    }
}

impl UserCoupons for MemoryStore {
    async fn user_coupons(&self, user: UserId, page: PageRequest) -> Result<Page<IssuedCoupon>, CouponError> {
        use crate::coupons::{cursor_after, cursor_coupon};
        let after = match &page.cursor {
            None => None,
            Some(cursor) => Some(cursor_coupon(cursor).ok_or(CouponError::BadCursor)?),
        };
        let world = self.lock();
        if !world.accounts.contains_key(&user) {
            return Err(CouponError::UnknownUser(user));
        }
        let items: Vec<IssuedCoupon> = world
            .copies
            .range((user, CouponId::new(1).expect("1 is an id"))..)
            .take_while(|((holder, _), _)| *holder == user)
            .filter(|((_, coupon), _)| after.is_none_or(|a| *coupon > a))
            .take(page.limit as usize + 1)
            .map(|(_, copy)| copy.clone())
            .collect();
        Ok(Page::from_lookahead(items, page.limit, |c| cursor_after(c.coupon_id)))
    }
}

impl OrderStore for MemoryStore {
    async fn order_inputs(
        &self,
        user: UserId,
        products: &[ProductId],
        coupon: Option<CouponId>,
    ) -> Result<orders::OrderInputs, OrderError> {
        let world = self.lock();
        Ok(orders::OrderInputs {
            user_exists: world.accounts.contains_key(&user),
            products: products.iter().map(|id| world.products.get(id).cloned()).collect(),
            coupon: coupon.and_then(|coupon| world.copies.get(&(user, coupon)).cloned()),
        })
    }

    async fn user_exists(&self, user: UserId) -> Result<bool, OrderError> {
        Ok(self.lock().accounts.contains_key(&user))
    }

    async fn user_coupon(&self, user: UserId, coupon: CouponId) -> Result<Option<IssuedCoupon>, OrderError> {
        Ok(self.copy(user, coupon))
    }

    async fn place(&self, order: Order, key: Option<(IdempotencyKey, String)>) -> Result<Placed, OrderError> {
        let mut world = self.lock();
        if let Some((key, fingerprint)) = &key {
            match keyed(&world, order.user, Some(key), fingerprint) {
                Err(()) | Ok(Some(UserKeyed::Entry(_) | UserKeyed::Payment(_))) => {
                    return Err(OrderError::IdempotencyKeyReused)
                }
                Ok(Some(UserKeyed::Order(first))) => {
                    let first = world.orders[first].clone();
                    return Ok(Placed { order: first, replayed: true });
                }
                Ok(None) => {}
            }
            world.keys.insert((order.user, key.as_str().to_owned()), (fingerprint.clone(), UserKeyed::Order(order.id)));
        }
        world.orders.insert(order.id, order.clone());
        Ok(Placed { order, replayed: false })
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>, OrderError> {
        Ok(self.lock().orders.get(&id).cloned())
    }

    async fn orders_of(&self, user: UserId, page: PageRequest) -> Result<Page<Order>, OrderError> {
        let before = match &page.cursor {
            None => None,
            Some(cursor) => Some(orders::cursor_position(cursor).ok_or(OrderError::BadCursor)?),
        };
        let world = self.lock();
        let mut theirs: Vec<(String, &Order)> = world
            .orders
            .values()
            .filter(|order| order.user == user)
            .map(|order| (orders::list_position(order.created_at, order.id), order))
            .filter(|(position, _)| before.as_ref().is_none_or(|before| position < before))
            .collect();
        theirs.sort_by(|a, b| b.0.cmp(&a.0));
        let items = theirs.into_iter().take(page.limit as usize + 1).map(|(_, order)| order.clone()).collect();
        Ok(Page::from_lookahead(items, page.limit, orders::cursor_after))
    }
}

impl OrderPayer for MemoryStore {
    async fn order_to_pay(
        &self,
        id: OrderId,
        user: UserId,
    ) -> Result<(Option<Order>, Option<BalanceSeen>), OrderError> {
        let world = self.lock();
        let seen = world.accounts.get(&user).map(|account| BalanceSeen {
            balance: account.balance,
            seq: account.entries.last().map_or(0, |entry| entry.seq),
        });
        Ok((world.orders.get(&id).cloned(), seen))
    }

    /// One lock makes every payment here exact whatever it saw, so `seen` is not needed.
    async fn pay(
        &self,
        order: &Order,
        _seen: Option<BalanceSeen>,
        payment: PaymentId,
        now: OffsetDateTime,
        key: Option<IdempotencyKey>,
    ) -> Result<Paid, OrderError> {
        let mut world = self.lock();
        let world = &mut *world;
        match keyed(world, order.user, key.as_ref(), &order.payment_fingerprint()) {
            Err(()) | Ok(Some(UserKeyed::Entry(_) | UserKeyed::Order(_))) => {
                return Err(OrderError::IdempotencyKeyReused)
            }
            Ok(Some(UserKeyed::Payment(first))) => {
                let first = world.payments[first].clone();
                let account = &world.accounts[&order.user];
                let balance_after = match first.entry {
                    Some(id) => {
                        account.entries.iter().find(|e| e.id == id).map_or(account.balance, |e| e.balance_after)
                    }
                    None => account.balance,
                };
                return Ok(Paid { payment: first, balance_after, replayed: true });
            }
            Ok(None) => {}
        }
        // Every condition of the DynamoDB transaction, in the order its refusals rank.
        let current = world.orders.get(&order.id).ok_or(OrderError::UnknownOrder)?;
        if let Some(refusal) = current.status.payment_refusal() {
            return Err(refusal);
        }
        if now >= current.pay_by {
            return Err(OrderError::Expired);
        }
        for line in &order.lines {
            let stock = world.products.get(&line.product_id).map_or(0, |p| p.stock);
            if stock < u64::from(line.quantity.get()) {
                return Err(OrderError::OutOfStock(line.product_id));
            }
        }
        let account = world.accounts.get(&order.user).ok_or(OrderError::UnknownUser(order.user))?;
        if account.balance < order.total {
            return Err(OrderError::InsufficientBalance);
        }
        if let Some(coupon) = order.coupon {
            let usable =
                world.copies.get(&(order.user, coupon)).is_some_and(|c| c.used_at.is_none() && now < c.expires_at);
            if !usable {
                return Err(OrderError::CouponUnavailable);
            }
        }

        for line in &order.lines {
            let quantity = u64::from(line.quantity.get());
            if let Some(product) = world.products.get_mut(&line.product_id) {
                product.stock -= quantity;
            }
            *world.sales.entry((now.date(), line.product_id)).or_default() += quantity;
        }
        let entry = (order.total > Money::ZERO).then(|| {
            world.post(order.user, EntryId::generate(), (EntryKind::Payment, Some(order.id)), order.total, now)
        });
        if let Some(copy) = order.coupon.and_then(|coupon| world.copies.get_mut(&(order.user, coupon))) {
            copy.used_at = Some(now);
        }
        if let Some(stored) = world.orders.get_mut(&order.id) {
            stored.status = OrderStatus::Paid;
            stored.paid_at = Some(now);
            stored.payment = Some(payment);
        }
        let record = Payment {
            id: payment,
            order: order.id,
            user: order.user,
            amount: order.total,
            entry: entry.as_ref().map(|e| e.id),
            at: now,
        };
        world.payments.insert(payment, record.clone());
        if let Some(key) = key {
            world.keys.insert(
                (order.user, key.as_str().to_owned()),
                (order.payment_fingerprint(), UserKeyed::Payment(payment)),
            );
        }
        let balance_after = world.accounts[&order.user].balance;
        Ok(Paid { payment: record, balance_after, replayed: false })
    }

    async fn record_failure(&self, order: &Order, failure: PaymentFailure) -> Result<(), OrderError> {
        let mut world = self.lock();
        let stored = world.orders.get_mut(&order.id).ok_or(OrderError::UnknownOrder)?;
        stored.failures.count += 1;
        stored.failures.latest.push(failure);
        let excess = stored.failures.latest.len().saturating_sub(KEPT_FAILURES);
        stored.failures.latest.drain(..excess);
        Ok(())
    }
}

impl World {
    /// Whether `key` is unused (`None`), cancelled this order (`Some(true)`) or did
    /// something else (`Some(false)`), in the canceller's scope.
    fn cancel_key(&self, by: Canceller, order: &Order, key: &IdempotencyKey) -> Option<bool> {
        let this = |fingerprint: &String, id: Option<OrderId>| {
            *fingerprint == order.cancel_fingerprint() && id == Some(order.id)
        };
        match by {
            Canceller::Customer(_) => match self.keys.get(&(order.user, key.as_str().to_owned()))? {
                (fingerprint, UserKeyed::Order(id)) => Some(this(fingerprint, Some(*id))),
                (fingerprint, _) => Some(this(fingerprint, None)),
            },
            Canceller::Operator => match self.operator_keys.get(key.as_str())? {
                (fingerprint, OperatorKeyed::Cancel(id)) => Some(this(fingerprint, Some(*id))),
                (fingerprint, _) => Some(this(fingerprint, None)),
            },
        }
    }

    fn keep_cancel_key(&mut self, by: Canceller, order: &Order, key: Option<&IdempotencyKey>) {
        let Some(key) = key else { return };
        let fingerprint = order.cancel_fingerprint();
        match by {
            Canceller::Customer(_) => {
                self.keys.insert((order.user, key.as_str().to_owned()), (fingerprint, UserKeyed::Order(order.id)));
            }
            Canceller::Operator => {
                self.operator_keys.insert(key.as_str().to_owned(), (fingerprint, OperatorKeyed::Cancel(order.id)));
            }
        }
    }
}

impl OrderCanceller for MemoryStore {
    async fn cancel_key_used(&self, by: Canceller, key: &IdempotencyKey, order: &Order) -> Result<bool, OrderError> {
        match self.lock().cancel_key(by, order, key) {
            None => Ok(false),
            Some(true) => Ok(true),
            Some(false) => Err(OrderError::IdempotencyKeyReused),
        }
    }

    async fn cancel_unpaid(
        &self,
        order: &Order,
        by: Canceller,
        now: OffsetDateTime,
        key: Option<&IdempotencyKey>,
    ) -> Result<Option<Order>, OrderError> {
        let mut world = self.lock();
        let Some(stored) = world.orders.get_mut(&order.id) else { return Err(OrderError::UnknownOrder) };
        if stored.status != OrderStatus::PendingPayment {
            return Ok(None);
        }
        stored.status = OrderStatus::Cancelled;
        stored.cancelled_at = Some(now);
        let cancelled = stored.clone();
        world.keep_cancel_key(by, order, key);
        Ok(Some(cancelled))
    }

    async fn refund(
        &self,
        order: &Order,
        by: Canceller,
        now: OffsetDateTime,
        key: Option<&IdempotencyKey>,
    ) -> Result<Option<Order>, OrderError> {
        let mut world = self.lock();
        let world = &mut *world;
        let Some(stored) = world.orders.get(&order.id) else { return Err(OrderError::UnknownOrder) };
        let Some(paid_at) = stored.paid_at.filter(|_| stored.status == OrderStatus::Paid) else { return Ok(None) };
        let account = world.accounts.get(&order.user).ok_or(OrderError::UnknownUser(order.user))?;
        if account.balance.checked_add(order.total).is_err() {
            return Err(OrderError::BalanceLimitExceeded);
        }
        for line in &order.lines {
            let quantity = u64::from(line.quantity.get());
            if let Some(product) = world.products.get_mut(&line.product_id) {
                product.stock += quantity;
            }
            if let Some(sold) = world.sales.get_mut(&(paid_at.date(), line.product_id)) {
                *sold = sold.checked_sub(quantity).ok_or_else(|| anyhow::anyhow!("refunding more than was sold"))?;
            }
        }
        let entry = (order.total > Money::ZERO).then(|| {
            world.post(order.user, EntryId::generate(), (EntryKind::Refund, Some(order.id)), order.total, now).id
        });
        if let Some(copy) = order.coupon.and_then(|coupon| world.copies.get_mut(&(order.user, coupon))) {
            if now < copy.expires_at {
                copy.used_at = None;
            }
        }
        let stored = world.orders.get_mut(&order.id).expect("read above");
        stored.status = OrderStatus::Refunded;
        stored.cancelled_at = Some(now);
        stored.refund_entry = entry;
        let refunded = stored.clone();
        world.keep_cancel_key(by, order, key);
        Ok(Some(refunded))
    }
}

impl SalesReader for MemoryStore {
    async fn sales(&self, days: &[Date]) -> Result<HashMap<ProductId, u64>, TopError> {
        let days: HashSet<&Date> = days.iter().collect();
        let mut sold: HashMap<ProductId, u64> = HashMap::new();
        for ((day, product), quantity) in &self.lock().sales {
            if days.contains(day) {
                *sold.entry(*product).or_default() += quantity;
            }
        }
        Ok(sold)
    }
}

impl CatalogAdmin for MemoryStore {
    async fn create_product(
        &self,
        product: NewProduct,
        key: Option<IdempotencyKey>,
        _now: OffsetDateTime,
    ) -> Result<Keyed<Product>, CatalogError> {
        let mut world = self.lock();
        if let Some(key) = &key {
            match world.operator_keys.get(key.as_str()) {
                Some((fingerprint, OperatorKeyed::Product(id))) if *fingerprint == product.fingerprint() => {
                    let value = world.products[id].clone();
                    return Ok(Keyed { value, replayed: true });
                }
                Some(_) => return Err(CatalogError::IdempotencyKeyReused),
                None => {}
            }
        }
        let next = world.products.keys().last().map_or(1, |id| id.get() + 1);
        let product_id = ProductId::new(next).map_err(|e| anyhow::anyhow!("product id {next}: {e}"))?;
        let value =
            Product { product_id, name: product.name.as_str().to_owned(), price: product.price, stock: product.stock };
        world.products.insert(product_id, value.clone());
        if let Some(key) = key {
            world
                .operator_keys
                .insert(key.as_str().to_owned(), (product.fingerprint(), OperatorKeyed::Product(product_id)));
        }
        Ok(Keyed { value, replayed: false })
    }

    async fn change_product(&self, id: ProductId, change: ProductChange) -> Result<Product, CatalogError> {
        let mut world = self.lock();
        let product = world.products.get_mut(&id).ok_or(CatalogError::UnknownProduct(id))?;
        if let Some(name) = change.name {
            product.name = name.as_str().to_owned();
        }
        if let Some(price) = change.price {
            product.price = price;
        }
        Ok(product.clone())
    }

    async fn restock(
        &self,
        id: ProductId,
        add: u64,
        key: Option<IdempotencyKey>,
        _now: OffsetDateTime,
    ) -> Result<Keyed<Product>, CatalogError> {
        let mut world = self.lock();
        let fingerprint = format!("RESTOCK:{id}:{add}");
        if let Some(key) = &key {
            match world.operator_keys.get(key.as_str()) {
                Some((stored, OperatorKeyed::Product(p))) if *stored == fingerprint && *p == id => {
                    let value = world.products.get(&id).cloned().ok_or(CatalogError::UnknownProduct(id))?;
                    return Ok(Keyed { value, replayed: true });
                }
                Some(_) => return Err(CatalogError::IdempotencyKeyReused),
                None => {}
            }
        }
        let product = world.products.get_mut(&id).ok_or(CatalogError::UnknownProduct(id))?;
        if product.stock > MAX_STOCK.saturating_sub(add) {
            return Err(CatalogError::StockLimitExceeded(id));
        }
        product.stock += add;
        let value = product.clone();
        if let Some(key) = key {
            world.operator_keys.insert(key.as_str().to_owned(), (fingerprint, OperatorKeyed::Product(id)));
        }
        Ok(Keyed { value, replayed: false })
    }
}

impl CouponAdmin for MemoryStore {
    async fn create_coupon(
        &self,
        coupon: NewCoupon,
        key: Option<IdempotencyKey>,
        _now: OffsetDateTime,
    ) -> Result<Keyed<Coupon>, CouponError> {
        let mut world = self.lock();
        if let Some(key) = &key {
            match world.operator_keys.get(key.as_str()) {
                Some((fingerprint, OperatorKeyed::Coupon(id))) if *fingerprint == coupon.fingerprint() => {
                    let value = world.coupons[id].clone();
                    return Ok(Keyed { value, replayed: true });
                }
                Some(_) => return Err(CouponError::IdempotencyKeyReused),
                None => {}
            }
        }
        let next = world.coupons.keys().map(|id| id.get()).max().map_or(1, |max| max + 1);
        let id = CouponId::new(next).map_err(|e| anyhow::anyhow!("coupon id {next}: {e}"))?;
        let value = Coupon {
            id,
            name: coupon.name.as_str().to_owned(),
            discount: coupon.discount,
            total: coupon.total,
            issued: 0,
            ends_at: coupon.ends_at,
        };
        world.coupons.insert(id, value.clone());
        if let Some(key) = key {
            world.operator_keys.insert(key.as_str().to_owned(), (coupon.fingerprint(), OperatorKeyed::Coupon(id)));
        }
        Ok(Keyed { value, replayed: false })
    }
}

impl UserRegistry for MemoryStore {
    async fn user_for(&self, subject: &str, _now: OffsetDateTime) -> Result<UserId, SignUpError> {
        let mut world = self.lock();
        if let Some(user) = world.subjects.get(subject) {
            return Ok(*user);
        }
        let next = world.accounts.keys().map(|u| u.get()).max().map_or(1, |max| max + 1);
        let user = UserId::new(next).map_err(|e| anyhow::anyhow!("user id {next}: {e}"))?;
        world.accounts.insert(user, Account::default());
        world.subjects.insert(subject.to_owned(), user);
        Ok(user)
    }
}
