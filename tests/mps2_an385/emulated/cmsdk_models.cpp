#include "cmsdk_models.hpp"

namespace fieldlink::test::mps2 {

using namespace uart;

// ---- CMSDK APB UART (DDI 0479) ----

bool CmsdkUartModel::transmit() {
    if ((state_ & kStateTxFull) == 0) return false;
    sent.push_back(tx_buffer_);
    state_ &= ~kStateTxFull;
    if ((ctrl_ & kCtrlTxIntEn) != 0) intstatus_ |= kIntTx;
    return true;
}

void CmsdkUartModel::receive(std::uint8_t byte) {
    if ((ctrl_ & kCtrlRxEn) == 0) {
        errors.push_back("byte arrived with the receiver off");
        return;
    }
    if ((state_ & kStateRxFull) != 0) {
        state_ |= kStateRxOverrun;
        if ((ctrl_ & kCtrlRxOverrunIntEn) != 0) intstatus_ |= kIntRxOverrun;
    }
    rx_buffer_ = byte;
    state_ |= kStateRxFull;
    if ((ctrl_ & kCtrlRxIntEn) != 0) intstatus_ |= kIntRx;
}

std::uint32_t CmsdkUartModel::on_read(std::uintptr_t offset) {
    switch (offset) {
        case kData:
            if ((state_ & kStateRxFull) == 0) errors.push_back("DATA read with the RX buffer empty");
            state_ &= ~kStateRxFull;
            return rx_buffer_;
        case kState: return state_;
        case kCtrl: return ctrl_;
        case kIntStatus: return intstatus_;
        case kBaudDiv: return bauddiv_;
        default: errors.push_back("read of an unmodelled UART register"); return 0;
    }
}

void CmsdkUartModel::on_write(std::uintptr_t offset, std::uint32_t value) {
    switch (offset) {
        case kData:
            if ((ctrl_ & kCtrlTxEn) == 0) errors.push_back("DATA written with the transmitter off");
            if ((state_ & kStateTxFull) != 0) {
                // The byte is lost; only the TX overrun flag tells.
                errors.push_back("DATA written while TX full");
                state_ |= kStateTxOverrun;
                if ((ctrl_ & kCtrlTxOverrunIntEn) != 0) intstatus_ |= kIntTxOverrun;
                return;
            }
            tx_buffer_ = static_cast<std::uint8_t>(value);
            state_ |= kStateTxFull;
            return;
        case kState:  // only the overrun flags are writable: 1 clears, 0 keeps
            state_ &= ~(value & (kStateTxOverrun | kStateRxOverrun));
            return;
        case kCtrl: ctrl_ = value & 0x7Fu; return;
        case kIntStatus: intstatus_ &= ~(value & 0xFu); return;  // INTCLEAR
        case kBaudDiv:
            if ((ctrl_ & (kCtrlTxEn | kCtrlRxEn)) != 0) errors.push_back("BAUDDIV written while enabled");
            if (value < 16) errors.push_back("BAUDDIV below 16");
            bauddiv_ = value & 0xFFFFFu;
            return;
        default: errors.push_back("write of an unmodelled UART register"); return;
    }
}

// ---- NVIC, first word of each bank ----

std::uint32_t NvicModel::on_read(std::uintptr_t offset) {
    switch (offset) {
        case kIser:
        case kIcer: return enabled;
        case kIspr:
        case kIcpr: return pending;
        default: errors.push_back("NVIC register outside IRQs 0 to 31"); return 0;
    }
}

void NvicModel::on_write(std::uintptr_t offset, std::uint32_t value) {
    switch (offset) {
        case kIser: enabled |= value; return;
        case kIcer: enabled &= ~value; return;
        case kIspr: pending |= value; return;
        case kIcpr: pending &= ~value; return;
        default: errors.push_back("NVIC register outside IRQs 0 to 31"); return;
    }
}

}  // namespace fieldlink::test::mps2
