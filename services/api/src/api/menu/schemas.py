from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MenuItemRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "name": "소금빵",
                    "price_krw": 3500,
                    "is_recommended": True,
                    "position": 0,
                }
            ]
        }
    )

    id: int = Field(description="Pass as the deal's menu item to start a deal from it")
    name: str
    price_krw: int | None = Field(description="Regular price; null when the menu says 시가/변동")
    is_recommended: bool
    position: int


class MenuRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "store_id": "DEMO0000000000000001",
                    "items": [
                        {
                            "id": 7,
                            "name": "소금빵",
                            "price_krw": 3500,
                            "is_recommended": True,
                            "position": 0,
                        }
                    ],
                }
            ]
        }
    )

    store_id: str
    items: list[MenuItemRead]
