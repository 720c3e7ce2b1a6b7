//! Lambda `products-top`: the top 5 products of the last 3 days, from the Redis cache.
rushcart::http_lambda!(ProductsTop);
