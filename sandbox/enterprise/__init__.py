"""The simulated national business registration database (CSDL quốc gia về đăng ký doanh nghiệp)."""
