//! Redis storage (its own issue).
#![allow(missing_docs)]
use super::Storage;
use crate::error::{Result, StorageError};
use std::time::Duration;
#[derive(Debug)]
pub struct RedisStorage;
#[derive(Debug)]
pub struct RedisStorageBuilder;
impl RedisStorage {
    pub fn builder(_url: &str) -> RedisStorageBuilder {
        RedisStorageBuilder
    }
}
impl RedisStorageBuilder {
    pub fn build(self) -> Result<RedisStorage> {
        Ok(RedisStorage)
    }
}
impl Storage for RedisStorage {
    fn get(&self, _key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Err(StorageError::new("unimplemented"))
    }
    fn set(&self, _key: &str, _value: &[u8], _ttl: Duration) -> Result<(), StorageError> {
        Err(StorageError::new("unimplemented"))
    }
    fn delete(&self, _key: &str) -> Result<(), StorageError> {
        Err(StorageError::new("unimplemented"))
    }
}
