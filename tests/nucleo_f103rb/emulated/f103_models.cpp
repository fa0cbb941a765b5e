#include "f103_models.hpp"

#include "f103_registers.hpp"

namespace fieldlink::test::f103 {

namespace reg = boards::nucleo_f103rb;

// ---- Flash controller (PM0075 §2.3, §3) ----

FlashControllerModel::FlashControllerModel() {
    memory_.fill(0xFF);
    regs_[4] = reg::flash::kCrLock;  // locked after reset
    port_.owner = this;
}

void FlashControllerModel::attach(std::vector<Access>* register_log) {
    attachments_.push_back(std::make_unique<Attachment>(*this, registers(), regs_.size() * 4, register_log));
    attachments_.push_back(std::make_unique<Attachment>(port_, memory(), memory_.size()));
}

void FlashControllerModel::start(Pending op) {
    pending_ = op;
    regs_[3] |= reg::flash::kSrBsy;
    polls_left_ = busy_polls;
}

void FlashControllerModel::finish() {
    regs_[3] &= ~reg::flash::kSrBsy;
    if (pending_ == Pending::Program) {
        if (fail_program_at >= 0 && programs - 1 == static_cast<unsigned>(fail_program_at)) {
            regs_[3] |= reg::flash::kSrPgerr;
        } else {
            memory_[pending_offset_] = static_cast<std::uint8_t>(pending_value_);
            memory_[pending_offset_ + 1] = static_cast<std::uint8_t>(pending_value_ >> 8);
            regs_[3] |= reg::flash::kSrEop;
        }
    } else if (pending_ == Pending::Erase) {
        for (std::uint32_t i = 0; i < kPageSize; ++i) memory_[pending_offset_ + i] = 0xFF;
        regs_[4] &= ~reg::flash::kCrStrt;
        regs_[3] |= reg::flash::kSrEop;
    }
    pending_ = Pending::None;
}

std::uint32_t FlashControllerModel::on_read(std::uintptr_t offset, unsigned) {
    if (offset == reg::flash::kSr && busy() && !stuck_busy) {
        if (polls_left_ == 0) {
            finish();
        } else {
            --polls_left_;
        }
    }
    return regs_[offset / 4];
}

void FlashControllerModel::on_write(std::uintptr_t offset, std::uint32_t value, unsigned size) {
    using namespace reg::flash;
    if (size != 4) errors.push_back("register written with a " + std::to_string(size * 8) + "-bit store");
    if (offset == kKeyr) {
        const std::uint32_t expected = key_step_ == 0 ? kKey1 : kKey2;
        if (!locked() || key_locked_ || value != expected) {
            key_locked_ = true;  // a wrong sequence locks the FPEC until reset, with a bus error
            errors.push_back("bad key sequence");
            return;
        }
        if (++key_step_ == 2) {
            regs_[4] &= ~kCrLock;
            key_step_ = 0;
        }
        return;
    }
    if (offset == kSr) {
        regs_[3] &= ~(value & (kSrPgerr | kSrWrprterr | kSrEop));  // write 1 to clear
        return;
    }
    if (busy() && (offset == kCr || offset == kAr)) errors.push_back("CR/AR written while BSY");
    if (offset == kCr) {
        if (locked()) {
            if ((value & kCrLock) == 0) errors.push_back("CR written while locked");
            regs_[4] |= value & kCrLock;
            return;
        }
        const bool start_erase = (value & kCrStrt) != 0 && (regs_[4] & kCrStrt) == 0;
        regs_[4] = value;
        if (start_erase) {
            if ((value & kCrPer) == 0) {
                errors.push_back("STRT without PER");
                return;
            }
            const std::uint32_t page_offset = regs_[5] - static_cast<std::uint32_t>(memory());
            if (page_offset >= memory_.size() || page_offset % kPageSize != 0) {
                errors.push_back("AR is not a page of the model");
                return;
            }
            if (protected_pages.count(page_offset / kPageSize) != 0) {
                regs_[3] |= kSrWrprterr;
                regs_[4] &= ~kCrStrt;
                return;
            }
            pending_offset_ = page_offset;
            start(Pending::Erase);
        }
        return;
    }
    if (offset == kAr) {
        regs_[5] = value;
        return;
    }
    regs_[offset / 4] = value;
}

std::uint32_t FlashControllerModel::MemoryPort::on_read(std::uintptr_t offset, unsigned size) {
    std::uint32_t value = 0;
    for (unsigned i = 0; i < size; ++i) value |= static_cast<std::uint32_t>(owner->memory_[offset + i]) << (8 * i);
    return value;
}

void FlashControllerModel::MemoryPort::on_write(std::uintptr_t offset, std::uint32_t value, unsigned size) {
    using namespace reg::flash;
    FlashControllerModel& m = *owner;
    if (size != 2 || offset % 2 != 0) {
        m.errors.push_back("flash written other than by an aligned half-word");
        return;
    }
    if (m.locked() || (m.regs_[4] & kCrPg) == 0) {
        m.errors.push_back("flash written without PG (bus error)");
        return;
    }
    if (m.busy()) {
        m.errors.push_back("flash written while BSY");
        return;
    }
    ++m.programs;
    if (m.protected_pages.count(static_cast<std::uint32_t>(offset / kPageSize)) != 0) {
        m.regs_[3] |= kSrWrprterr;
        return;
    }
    const std::uint16_t now = static_cast<std::uint16_t>(m.memory_[offset] | (m.memory_[offset + 1] << 8));
    if (now != 0xFFFF) {
        m.regs_[3] |= kSrPgerr;  // not erased: nothing written (PM0075 §3.4)
        return;
    }
    m.pending_offset_ = static_cast<std::uint32_t>(offset);
    m.pending_value_ = static_cast<std::uint16_t>(value);
    m.start(Pending::Program);
}

// ---- USART (RM0008 §27.6) ----

UsartModel::UsartModel() { regs_[0] = reg::usart::kSrTxe | reg::usart::kSrTc; }

void UsartModel::receive(std::uint8_t byte, bool framing_error) {
    using namespace reg::usart;
    if ((regs_[3] & kCr1Re) == 0 || (regs_[3] & kCr1Ue) == 0) return;  // receiver off: nothing
    if ((regs_[0] & kSrRxne) != 0) {
        regs_[0] |= kSrOre;
        return;
    }
    regs_[1] = byte;
    regs_[0] |= kSrRxne;
    if (framing_error) regs_[0] |= kSrFe;
}

std::uint32_t UsartModel::on_read(std::uintptr_t offset, unsigned) {
    using namespace reg::usart;
    if (offset == kSr) sr_read_ = true;
    if (offset == kDr) {
        const std::uint32_t value = regs_[1];
        regs_[0] &= ~kSrRxne;
        if (sr_read_) regs_[0] &= ~(kSrOre | kSrFe | kSrNe | kSrPe);
        sr_read_ = false;
        return value;
    }
    return regs_[offset / 4];
}

void UsartModel::on_write(std::uintptr_t offset, std::uint32_t value, unsigned) {
    using namespace reg::usart;
    if (offset == kDr) {
        if ((regs_[3] & kCr1Te) == 0) errors.push_back("DR written with the transmitter off");
        if ((regs_[0] & kSrTxe) == 0) errors.push_back("DR written while TXE clear");
        sent.push_back(static_cast<std::uint8_t>(value));
        return;  // the byte moves to the shift register at once: TXE stays set
    }
    if (offset == kSr) {
        regs_[0] &= value | ~(kSrRxne | kSrTc);  // only RXNE and TC clear by writing 0
        return;
    }
    if ((offset == kBrr || offset == kCr2 || offset == kCr3) && (regs_[3] & kCr1Ue) != 0) {
        errors.push_back("configured while UE is set");
    }
    regs_[offset / 4] = value;
}

// ---- ADC (RM0008 §11) ----

AdcModel::AdcModel() = default;

std::uint32_t AdcModel::on_read(std::uintptr_t offset, unsigned) {
    using namespace reg::adc;
    if (offset == kCr2 && cal_left_ != 0 && !stuck_calibration) {
        if (--cal_left_ == 0) {
            if ((regs_[2] & kCr2Cal) != 0) calibrated_ = true;
            regs_[2] &= ~(kCr2Rstcal | kCr2Cal);
        }
    }
    if (offset == kSr && converting_ && !stuck_conversion) {
        if (eoc_left_ == 0) {
            converting_ = false;
            regs_[19] = value[channel_];
            regs_[0] |= kSrEoc;
        } else {
            --eoc_left_;
        }
    }
    if (offset == kDr) regs_[0] &= ~kSrEoc;  // reading DR clears EOC
    return regs_[offset / 4];
}

void AdcModel::on_write(std::uintptr_t offset, std::uint32_t v, unsigned) {
    using namespace reg::adc;
    if (offset != kCr2) {
        regs_[offset / 4] = v;
        return;
    }
    const std::uint32_t old = regs_[2];
    regs_[2] = v;
    if ((v & kCr2Adon) == 0) {
        powered_ = false;
        return;
    }
    if (!powered_) {
        powered_ = true;
        delays_at_power_up_ = delays().size();
        if ((v & (kCr2Rstcal | kCr2Cal | kCr2Swstart)) != 0) errors.push_back("started together with power-up");
        return;
    }
    if ((v & kCr2Rstcal) != 0 && (old & kCr2Rstcal) == 0) {
        if (delays().size() == delays_at_power_up_) errors.push_back("RSTCAL before the ADC settled");
        cal_left_ = calibration_polls;
    }
    if ((v & kCr2Cal) != 0 && (old & kCr2Cal) == 0) {
        if ((old & kCr2Rstcal) != 0) errors.push_back("CAL while RSTCAL is running");
        cal_left_ = calibration_polls;
    }
    if ((v & kCr2Swstart) != 0) {
        regs_[2] &= ~kCr2Swstart;  // cleared as the conversion starts
        if ((v & kCr2Exttrig) == 0 || (v & (7u << 17)) != kCr2ExtselSwstart) {
            errors.push_back("SWSTART without EXTTRIG and EXTSEL = SWSTART");
            return;
        }
        if (!calibrated_) errors.push_back("conversion before calibration");
        channel_ = regs_[13] & 0x1F;  // SQR3.SQ1
        if ((channel_ == kTemperatureChannel || channel_ == kVrefintChannel) && (v & kCr2Tsvrefe) == 0) {
            errors.push_back("internal channel converted with TSVREFE clear");
        }
        if (channel_ >= 10 && ((regs_[3] >> smpr1_shift(channel_)) & 7u) != kSmp239Cycles) {
            errors.push_back("sample time below 239.5 cycles on channel " + std::to_string(channel_));
        }
        converting_ = true;
        eoc_left_ = conversion_polls;
        ++conversions;
    }
}

}  // namespace fieldlink::test::f103
