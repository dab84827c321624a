#include "replay.hpp"

#include "snapshot.hpp"

namespace saga::machine {

result<instance> replay(const compiled& def, std::string_view id,
                        std::span<const journal_record> records) {
    instance st;
    st.id = std::string(id);
    for (std::size_t i = 0; i < records.size(); ++i) {
        const auto& rec = records[i];
        if (i == 0 && rec.snapshot) {
            SAGA_TRY(st, decode_snapshot(*rec.snapshot));
        } else {
            for (const auto& e : rec.events) apply(def, st, e, rec.at);
        }
    }
    return st;
}

}  // namespace saga::machine
