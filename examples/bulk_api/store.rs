//! The demo's in-memory data: webhooks per account (bulk dialect) and courses (coded dialect).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use serde::Serialize;
use serde_json::Value;
use tower_api_errors::{
    bulk::{BulkRead, BulkWrite, GetError},
    ErrorCode, FieldError,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Webhook {
    pub id: String,
    pub account_id: String,
    pub url: String,
    pub email: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Course {
    pub id: u64,
    pub title: String,
    pub active: bool,
}

/// Everything the demo stores. One lock per resource: a bulk write is applied atomically.
#[derive(Debug)]
pub struct Store {
    webhooks: Mutex<HashMap<String, BTreeMap<String, Webhook>>>,
    next_webhook: AtomicU64,
    courses: Mutex<Vec<Course>>,
}

impl Default for Store {
    fn default() -> Self {
        let courses = (1..=25)
            .map(|id| Course {
                id,
                title: format!("Course {id}"),
                // Every tenth course is retired, to show `record_not_active`.
                active: id % 10 != 0,
            })
            .collect();
        Store {
            webhooks: Mutex::default(),
            next_webhook: AtomicU64::new(1),
            courses: Mutex::new(courses),
        }
    }
}

fn is_valid_url(url: &str) -> bool {
    url.strip_prefix("https://")
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|host| !host.is_empty() && !host.contains(char::is_whitespace))
}

fn is_valid_email(email: &str) -> bool {
    email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
}

/// Checks an optional string field; `required` when it must be there.
fn string_field<'a>(
    item: &'a serde_json::Map<String, Value>,
    field: &'static str,
    required: bool,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match item.get(field) {
        None | Some(Value::Null) if required => {
            errors.push(FieldError::new(field, "required"));
            None
        }
        None | Some(Value::Null) => None,
        Some(Value::String(value)) => Some(value),
        Some(_) => {
            errors.push(FieldError::new(field, "invalid_type"));
            None
        }
    }
}

/// Checks `url` and `email` when present; `email` must not be used by another webhook of the
/// account than `id` (the one being updated, if any).
fn check_url_and_email(
    url: Option<&str>,
    email: Option<&str>,
    mine: &BTreeMap<String, Webhook>,
    id: Option<&str>,
    errors: &mut Vec<FieldError>,
) {
    if url.is_some_and(|url| !is_valid_url(url)) {
        errors.push(FieldError::new("url", "invalid_url"));
    }
    if let Some(email) = email {
        if !is_valid_email(email) {
            errors.push(FieldError::new("email", "invalid_email"));
        } else if mine
            .values()
            .any(|hook| hook.email == email && Some(hook.id.as_str()) != id)
        {
            errors.push(FieldError::new("email", "must_be_unique"));
        }
    }
}

impl Store {
    pub fn get_webhooks(&self, account: &str, ids: &[String]) -> BulkRead<Webhook> {
        let webhooks = self.webhooks.lock().unwrap();
        let mine = webhooks.get(account);
        let mut read = BulkRead::new();
        for id in ids {
            match mine.and_then(|hooks| hooks.get(id)) {
                Some(hook) => read.push_found(hook.clone()),
                None => read.push_error(GetError::object_not_found(account, id.clone())),
            };
        }
        read
    }

    /// Applies `apply` to each item of a bulk write, in request order, under the account's
    /// lock, so a request is applied as a whole; an item that is not an object is
    /// `must_be_object`.
    fn write_each<T>(
        &self,
        account: &str,
        items: &[Value],
        mut apply: impl FnMut(
            &mut BTreeMap<String, Webhook>,
            &serde_json::Map<String, Value>,
            &mut BulkWrite<T>,
        ),
    ) -> BulkWrite<T> {
        let mut webhooks = self.webhooks.lock().unwrap();
        let mine = webhooks.entry(account.to_owned()).or_default();
        let mut results = BulkWrite::with_capacity(items.len());
        for item in items {
            match item.as_object() {
                Some(item) => apply(mine, item, &mut results),
                None => {
                    results.push_validation_errors([FieldError::object("must_be_object")]);
                }
            }
        }
        results
    }

    pub fn create_webhooks(&self, account: &str, items: &[Value]) -> BulkWrite<Webhook> {
        self.write_each(account, items, |mine, item, results| {
            let mut errors = Vec::new();
            let url = string_field(item, "url", true, &mut errors);
            let email = string_field(item, "email", true, &mut errors);
            check_url_and_email(url, email, mine, None, &mut errors);
            match (url, email) {
                (Some(url), Some(email)) if errors.is_empty() => {
                    let id = format!("web_{}", self.next_webhook.fetch_add(1, Ordering::Relaxed));
                    let hook = Webhook {
                        id: id.clone(),
                        account_id: account.to_owned(),
                        url: url.to_owned(),
                        email: email.to_owned(),
                    };
                    mine.insert(id, hook.clone());
                    results.push_ok(hook);
                }
                _ => {
                    results.push_validation_errors(errors);
                }
            }
        })
    }

    pub fn update_webhooks(&self, account: &str, items: &[Value]) -> BulkWrite<Webhook> {
        self.write_each(account, items, |mine, item, results| {
            let mut errors = Vec::new();
            let id = string_field(item, "id", true, &mut errors);
            let url = string_field(item, "url", false, &mut errors);
            let email = string_field(item, "email", false, &mut errors);
            let Some(id) = id else {
                results.push_validation_errors(errors);
                return;
            };
            if !mine.contains_key(id) {
                results.push_error(ErrorCode::ObjectNotFound);
                return;
            }
            check_url_and_email(url, email, mine, Some(id), &mut errors);
            if !errors.is_empty() {
                results.push_validation_errors(errors);
                return;
            }
            let hook = mine.get_mut(id).expect("checked above");
            if let Some(url) = url {
                hook.url = url.to_owned();
            }
            if let Some(email) = email {
                hook.email = email.to_owned();
            }
            results.push_ok(hook.clone());
        })
    }

    pub fn delete_webhooks(&self, account: &str, items: &[Value]) -> BulkWrite<Deleted> {
        self.write_each(account, items, |mine, item, results| {
            let mut errors = Vec::new();
            let Some(id) = string_field(item, "id", true, &mut errors) else {
                results.push_validation_errors(errors);
                return;
            };
            match mine.remove(id) {
                Some(_) => results.push_ok(Deleted {
                    id: id.to_owned(),
                    deleted: true,
                }),
                None => results.push_error(ErrorCode::ObjectNotFound),
            };
        })
    }

    pub fn list_courses(&self, page: usize, page_size: usize) -> (usize, Vec<Course>) {
        let courses = self.courses.lock().unwrap();
        let items = courses
            .iter()
            .skip((page - 1).saturating_mul(page_size))
            .take(page_size)
            .cloned()
            .collect();
        (courses.len(), items)
    }

    pub fn course(&self, id: u64) -> Option<Course> {
        let courses = self.courses.lock().unwrap();
        courses.iter().find(|course| course.id == id).cloned()
    }

    pub fn create_course(&self, title: &str) -> Course {
        let mut courses = self.courses.lock().unwrap();
        let course = Course {
            id: courses.len() as u64 + 1,
            title: title.to_owned(),
            active: true,
        };
        courses.push(course.clone());
        course
    }
}
