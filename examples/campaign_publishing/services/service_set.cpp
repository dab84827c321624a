// All services together, and the sample data of the demo.
#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "services.hpp"

namespace campaign {

namespace {

constexpr std::int64_t day_ms = 24LL * 3600 * 1000;

/// A sample product: the last few of the pool are not compliant (no GTIN, no image, no price).
product_record sample_product(int i) {
    product_record p{.sku = fmt::format("SKU-{:03}", i),
                     .title = fmt::format("Product {}", i),
                     .gtin = fmt::format("0{:012}", 400000000000LL + i),
                     .price_cents = 999 + 100 * i,
                     .image_url = fmt::format("https://cdn.example.com/p/{}.jpg", i)};
    if (i == 97) p.gtin.clear();
    if (i == 98) p.image_url.clear();
    if (i == 99) p.price_cents = 0;
    return p;
}

/// The store's lock, shared: the services' files belong with the store (throws if it cannot be
/// taken: the constructor's callers turn that into an error).
saga::sqlite::store_lock installation_lock(const data_paths& paths) {
    auto lock = saga::sqlite::store_lock::shared(paths.store.string());
    if (!lock) throw std::runtime_error(lock.error().message);
    return std::move(lock).value();
}

std::vector<std::string> skus(std::initializer_list<int> ids) {
    std::vector<std::string> out;
    for (int i : ids) out.push_back(fmt::format("SKU-{:03}", i));
    return out;
}

}  // namespace

service_set::service_set(const data_paths& paths, const simulation& sim)
    : paths_(paths),
      sim_(sim),
      lock_(installation_lock(paths)),
      campaigns_(std::make_unique<campaign_service>(paths, sim)),
      catalog_(std::make_unique<catalog_service>(paths, sim)),
      billing_(std::make_unique<billing_service>(paths, sim)),
      analytics_(std::make_unique<analytics_service>(paths, sim)) {
    for (const auto& n : sim.networks)
        networks_.push_back(std::make_unique<ad_network_service>(paths, sim, n));
}

service_set::~service_set() {
    stop();
    threads_.join();
}

std::vector<std::string> service_set::names() const {
    std::vector<std::string> out{"campaigns", "catalog", "billing", "analytics"};
    for (const auto& n : networks_) out.push_back(n->profile().name);
    return out;
}

saga::result<void> service_set::start(const std::shared_ptr<saga::transport>& transport,
                                      const std::vector<std::string>& only) {
    const auto known = names();
    for (const auto& name : only)
        if (std::find(known.begin(), known.end(), name) == known.end())
            return saga::error{
                saga::errc::invalid_argument,
                fmt::format("unknown service '{}' (known: {})", name, fmt::join(known, ", "))};
    std::vector<durable_service*> all{campaigns_.get(), catalog_.get(), billing_.get(),
                                      analytics_.get()};
    for (auto& n : networks_) all.push_back(n.get());
    for (std::size_t i = 0; i < all.size(); ++i) {
        auto* s = all[i];
        if (!only.empty() && std::find(only.begin(), only.end(), known[i]) == only.end()) continue;
        if (auto r = s->start(transport, threads_.get_executor()); !r)
            return saga::error{r.error().code, fmt::format("cannot start service '{}': {}",
                                                           s->endpoint(), r.error().message)};
    }
    started_ = true;
    return saga::success();
}

void service_set::stop() {
    if (!started_) return;
    started_ = false;
    campaigns_->stop();
    catalog_->stop();
    billing_->stop();
    analytics_->stop();
    for (auto& n : networks_) n->stop();
}

std::vector<campaign_record> service_set::seed_samples(std::size_t count) {
    for (int i = 1; i <= 99; ++i) catalog_->add_product(sample_product(i));
    const auto now = durable_service::now_ms();
    std::vector<campaign_record> out{
        {.id = "c-1001",
         .name = "Spring Sneakers",
         .networks = {"google", "instagram"},
         .products = skus({1, 2, 3, 4, 5, 6}),
         .budget_cents = 250'000,
         .creative = "Fresh kicks for spring runs"},
        {.id = "c-1002",
         .name = "Summer Sale",
         .networks = {"google", "instagram", "tiktok", "snapchat"},
         .products = skus({7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}),
         .budget_cents = 900'000,
         .creative = "Up to 40% off everything summer"},
        {.id = "c-1003",
         .name = "Luxury Watches",
         .networks = {"google"},
         .products = skus({19, 20}),
         .budget_cents = 9'000'000,
         .creative = "Timeless Swiss craftsmanship"},
        {.id = "c-1004",
         .name = "Home Office",
         .networks = {"google", "tiktok"},
         .products = skus({21, 22, 23, 97, 24, 25}),
         .budget_cents = 300'000,
         .creative = "Work from home in comfort"},
        {.id = "c-1005",
         .name = "Glow Serum",
         .networks = {"instagram", "tiktok"},
         .products = skus({26, 27, 28}),
         .budget_cents = 150'000,
         .creative = "The miracle serum for glowing skin"},
        {.id = "c-1006",
         .name = "Craft Beer Club",
         .networks = {"google", "snapchat"},
         .products = skus({29, 30}),
         .budget_cents = 120'000,
         .creative = "Monthly craft beer, delivered"},
        {.id = "c-1007",
         .name = "Back to School",
         .networks = {"google", "instagram", "tiktok"},
         .products = skus({31, 32, 33, 34}),
         .budget_cents = 400'000,
         .creative = "Everything for the new school year"},
    };
    const std::vector<std::string> creatives{
        "New arrivals every week",    "Free shipping this weekend", "Bundle and save 20%",
        "Guaranteed lowest prices",    // rejected by Google and TikTok
        "Flash giveaway: win a bike",  // rejected by Instagram
        "Rated 4.8 by our customers", "Limited edition colours"};
    for (std::size_t i = out.size(); i < count; ++i) {
        const auto id = fmt::format("c-{}", 1001 + i);
        const auto r = [&](std::string_view what) {
            return mix(sim_.seed, id + "|" + std::string(what));
        };
        campaign_record c{.id = id, .name = fmt::format("Campaign {}", 1001 + i)};
        for (auto n : all_networks)
            if (r(n) % 2 == 0) c.networks.emplace_back(n);
        if (c.networks.empty()) c.networks.emplace_back(all_networks[r("net") % 4]);
        const auto products = 3 + r("products") % 10;
        for (std::uint64_t p = 0; p < products; ++p)
            c.products.push_back(fmt::format("SKU-{:03}", 1 + (r(fmt::format("p{}", p)) % 90)));
        std::sort(c.products.begin(), c.products.end());
        c.products.erase(std::unique(c.products.begin(), c.products.end()), c.products.end());
        c.budget_cents = 50'000 + static_cast<std::int64_t>(r("budget") % 750'000);
        // some campaigns carry a problem, more of them at higher failure rates
        const double trouble = chance(sim_.seed, id + "|trouble");
        c.creative = creatives[r("creative") % creatives.size()];
        if (trouble < sim_.failure_rate * 0.3)
            c.products.push_back(fmt::format("SKU-{}", 97 + r("bad") % 3));
        else if (trouble < sim_.failure_rate * 0.5)
            c.budget_cents = sim_.credit_limit_cents * 2;
        out.push_back(std::move(c));
    }
    out.resize(std::min(out.size(), std::max<std::size_t>(count, 1)));
    for (std::size_t i = 0; i < out.size(); ++i) {
        auto& c = out[i];
        c.merchant = "m-" + c.id;
        // schedule windows (seed 003): most are open; one opens tomorrow, one closed long ago
        c.open_at_ms = now - day_ms;
        c.close_at_ms = now + 30 * day_ms;
        if (i % 5 == 4) c.open_at_ms = now + day_ms;
        if (i % 7 == 6) {
            c.open_at_ms = now - 90 * day_ms;
            c.close_at_ms = now - 45 * day_ms;
        }
        billing_->open_account(c.merchant, sim_.credit_limit_cents);
        campaigns_->create(c);
    }
    return out;
}

}  // namespace campaign
