//! The catalogue on DynamoDB. Products live at `PRODUCT#<id>` / `PRODUCT` and are
//! listed in id order through `gsi1` (keys in [`super::keys`]).

use anyhow::anyhow;

use super::keys::{self, PRODUCTS_GSI1PK};
use super::{db_error, get_money, get_s, get_u64, s, DbError, DynamoStore, Item};
use crate::catalog::{cursor_after, cursor_product, CatalogError, Product, ProductCatalog};
use crate::ids::ProductId;
use crate::pagination::{Page, PageRequest};

impl From<DbError> for CatalogError {
    fn from(err: DbError) -> CatalogError {
        match err {
            DbError::Unavailable(e) => CatalogError::Unavailable(e),
            DbError::Other(e) => CatalogError::Unexpected(e),
        }
    }
}

impl ProductCatalog for DynamoStore {
    async fn product(&self, id: ProductId) -> Result<Product, CatalogError> {
        let item = self.get(&keys::product(id), || format!("get product {id}")).await?;
        let item = item.ok_or(CatalogError::UnknownProduct(id))?;
        Ok(product_from_item(&item)?)
    }

    async fn products(&self, page: PageRequest) -> Result<Page<Product>, CatalogError> {
        let start = match &page.cursor {
            None => None,
            Some(cursor) => {
                let after = cursor_product(cursor).ok_or(CatalogError::BadCursor)?;
                let mut start = keys::product(after).item();
                start.insert("gsi1pk".to_owned(), s(PRODUCTS_GSI1PK));
                start.insert("gsi1sk".to_owned(), s(keys::product_gsi1sk(after)));
                Some(start)
            }
        };
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :kind")
            .expression_attribute_values(":kind", s(PRODUCTS_GSI1PK))
            .set_exclusive_start_key(start)
            .limit(page.limit as i32 + 1)
            .send()
            .await
            .map_err(|e| db_error(e, || "list products".to_owned()))?;
        let mut items: Vec<Product> = output.items().iter().map(product_from_item).collect::<anyhow::Result<_>>()?;
        let has_more = items.len() > page.limit as usize;
        items.truncate(page.limit as usize);
        let next = items.last().filter(|_| has_more).map(|p| cursor_after(p.product_id));
        Ok(Page { items, next })
    }
}

pub fn product_from_item(item: &Item) -> anyhow::Result<Product> {
    Ok(Product {
        product_id: ProductId::new(get_u64(item, "productId")?).map_err(|e| anyhow!("productId: {e}"))?,
        name: get_s(item, "name")?.to_owned(),
        price: get_money(item, "price")?,
        stock: get_u64(item, "stock")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::dynamodb::seed::{product_item, ProductSeed};
    use crate::money::Money;

    #[test]
    fn a_product_round_trips_and_is_listed_by_the_index_in_id_order() {
        let seed = ProductSeed {
            id: ProductId::new(7).unwrap(),
            name: "Kettle".into(),
            price: Money::parse("19.90").unwrap(),
            stock: 40,
        };
        let item = product_item(&seed);
        assert_eq!((item["pk"].clone(), item["sk"].clone()), (s("PRODUCT#7"), s("PRODUCT")));
        assert_eq!((item["gsi1pk"].clone(), item["gsi1sk"].clone()), (s(PRODUCTS_GSI1PK), s("00000000000000000007")));
        let product = product_from_item(&item).unwrap();
        assert_eq!(
            (product.product_id, product.name.as_str(), product.price, product.stock),
            (seed.id, "Kettle", seed.price, 40)
        );
    }
}
